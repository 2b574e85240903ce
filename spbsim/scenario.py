"""Scenario files: TOML -> validated, frozen dataclasses.

A scenario describes a machine (``[scenario]``), the workload sources that
send it allocation requests (``[[source]]``, their kinds in :data:`KINDS`),
optional rate multipliers over time windows (``[[phase]]``) and SPB switches
(``[spb]``).  ``load_scenario`` takes a path or a built-in's name
(``spbsim/scenarios/*.toml``) plus ``--set``-style overrides.  Errors are
:class:`ScenarioError` naming the file and the key path
(``source[2].lifetime.mean``).  Keys, units and defaults: docs/scenarios.md.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, SpbsimError  # noqa: F401  (SpbsimError re-exported)
from .mm import gfp as G
from .memmap import MemoryMap, load_memory_map, parse_limit
from .mm.geometry import MAX_MEMORY, MIN_MEMORY, format_size, parse_size
from .policy import Policy, PolicyError
from .switches import MACHINE_SWITCHES, SWITCH_DEFAULTS
from .workload.kinds import HUGETLB, HUGETLB_1G_ORDER, KINDS, KindInfo, kind_keys

__all__ = ["ScenarioError", "KindInfo", "KINDS", "Lifetime", "Source", "Phase", "Scenario",
           "load_scenario", "scenario_from_text", "builtin_scenarios", "parse_time",
           "parse_rate", "parse_interval", "parse_size_value", "PAGE_SIZE", "HUGETLB_1G_ORDER",
           "MAX_ORDER"]

PAGE_SIZE = 4096
MAX_ORDER = 10                       # MAX_PAGE_ORDER: orders a source may ask for
MAX_CPUS = 256
MAX_DURATION_S = 7 * 86400.0
MIN_TICK_S, MAX_TICK_S = 1e-3, 1.0
MAX_RATE = 1e9
#: deprecated, kept for one release and no longer used: spbsim.policy.Policy.parse checks policies
POLICY_RE = re.compile(r"^(stock|spb)(:[a-z0-9.-]+)?(,[a-z0-9_]+=[A-Za-z0-9_.-]+)*$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
KERNEL_VERSIONS = ("recent", "6.12", "6.1")
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ConfigError):
    """An invalid scenario file or override.

    The message reads ``FILE: KEY.PATH: what is wrong (what is allowed)``;
    ``file`` and ``key`` are also attributes.
    """

    def __init__(self, message, file=None, key=None):
        self.file = file
        self.key = key
        super().__init__(message)


# ---------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------

LIFETIME_DISTS = {
    # dist -> (keys in order (a, b), ...)
    "exp": ("mean",),
    "lognormal": ("median", "sigma"),
    "fixed": ("value",),
    "uniform": ("min", "max"),
}


@dataclass(frozen=True)
class Lifetime:
    """How long an allocated block lives, in seconds.

    ``dist``/``a``/``b``: "inf" (never freed by the source; reclaim may),
    "exp" (a = mean), "lognormal" (a = median, b = sigma of the log),
    "fixed" (a = value), "uniform" (a = min, b = max).
    """
    dist: str
    a: float = math.inf
    b: float = 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lifetimes in seconds (float64; np.inf for "inf")."""
        if self.dist == "inf":
            return np.full(n, np.inf)
        if self.dist == "exp":
            return rng.exponential(self.a, n)
        if self.dist == "lognormal":
            return rng.lognormal(math.log(self.a), self.b, n)
        if self.dist == "fixed":
            return np.full(n, float(self.a))
        if self.dist == "uniform":
            return rng.uniform(self.a, self.b, n)
        raise ValueError(f"unknown lifetime distribution {self.dist!r}")

    @property
    def mean_s(self) -> float:
        if self.dist == "inf":
            return math.inf
        if self.dist in ("exp", "fixed"):
            return float(self.a)
        if self.dist == "lognormal":
            return float(self.a * math.exp(self.b ** 2 / 2))
        return (self.a + self.b) / 2

    def describe(self) -> str:
        if self.dist == "inf":
            return "inf"
        keys = LIFETIME_DISTS[self.dist]
        vals = (self.a, self.b)[:len(keys)]
        return self.dist + "(" + ", ".join(f"{k}={v:g}" for k, v in zip(keys, vals)) + ")"


@dataclass(frozen=True, eq=False)
class Source:
    """One workload source: a Poisson stream of allocation requests.

    ``orders``/``order_probs``: the orders asked for and their probabilities
    (sum 1; read-only arrays).  ``limit_fraction`` (of managed memory) or
    ``limit_bytes``: the source pauses while it holds more.  Bursts: the rate
    is multiplied by ``burst_factor`` during the first ``burst_length_s`` of
    every ``burst_period_s``, counted from ``start_s`` (period and length are
    None and the factor 1.0 without bursts).  ``interval_s``: hugetlb_1g only.
    """
    name: str
    kind: str
    rate_per_s: float
    orders: np.ndarray
    order_probs: np.ndarray
    lifetime: Lifetime
    gfp: int
    start_s: float
    stop_s: float
    limit_fraction: float | None = None
    limit_bytes: int | None = None
    burst_period_s: float | None = None
    burst_length_s: float | None = None
    burst_factor: float = 1.0
    objects_per_slab: int = 1
    pinned: float = 0.0
    interval_s: float | None = None

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def mean_block_bytes(self) -> float:
        return mean_block_bytes(self.orders, self.order_probs)

    def in_burst(self, t_s: float) -> bool:
        if self.burst_period_s is None:
            return False
        return (t_s - self.start_s) % self.burst_period_s < self.burst_length_s

    def burst_time(self, t0: float, t1: float) -> float:
        """Seconds of [t0, t1) that lie inside burst windows."""
        if self.burst_period_s is None or t1 <= t0:
            return 0.0
        p, length = self.burst_period_s, self.burst_length_s

        def cum(x):
            x -= self.start_s
            k = math.floor(x / p)
            return k * length + min(x - k * p, length)
        return cum(t1) - cum(t0)


@dataclass(frozen=True)
class Phase:
    """Rate multipliers ``scale`` (source name -> factor) during [start_s, stop_s)."""
    name: str
    start_s: float
    stop_s: float
    scale: dict

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.stop_s


@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated scenario (see the module docstring for the file format)."""
    name: str
    description: str
    memory: str
    cpus: int
    policy: str
    kernel_version: str
    duration_s: float
    seed: int
    sample_interval_s: float
    tick_s: float
    early_unmovable: int | None
    sources: tuple
    phases: tuple = ()
    path: str | None = None
    #: [spb] table / --set spb.NAME=value: switches of the SPB allocator
    #: (spbsim.mm.spb.params.SPB_SWITCHES), applied on top of the policy's preset
    spb_set: tuple = ()
    #: (name, value) of every machine switch (spbsim.switches.MACHINE_SWITCHES),
    #: read as attributes: ``sc.swap``
    switches: tuple = tuple(SWITCH_DEFAULTS.items())
    #: scenario.memory_map: the spbsim.memmap.MemoryMap that lays the machine
    #: out (memory, low memory, holes, reserved ranges), or None
    memory_map: MemoryMap | None = None
    _by_name: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_name", {s.name: s for s in self.sources})
        given = dict(self.switches)
        bad = [k for k, v in given.items() if k not in SWITCH_DEFAULTS or not isinstance(v, bool)]
        if bad:
            raise TypeError(f"Scenario.switches: {bad}: not a machine switch "
                            f"({', '.join(SWITCH_DEFAULTS)}) with a bool value")
        object.__setattr__(self, "switches", tuple((k, given.get(k, d))
                                                   for k, d in SWITCH_DEFAULTS.items()))

    def __getattr__(self, name):
        if name in SWITCH_DEFAULTS:
            return dict(self.switches)[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def machine_switches(self) -> dict:
        """The switches as Machine keyword arguments."""
        return dict(self.switches)

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)

    def source(self, name: str) -> Source:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no source {name!r} (sources: {', '.join(self._by_name)})") from None

    def rate_scale(self, source_name: str, t_s: float) -> float:
        """Rate multiplier of a source at time ``t_s``: the product of the
        scales of the phases active then, times the burst factor if ``t_s``
        falls in one of the source's burst windows.  (The source's own
        start/stop window is not applied here.)"""
        src = self.source(source_name)
        f = 1.0
        for ph in self.phases:
            if ph.start_s <= t_s < ph.stop_s:
                f *= ph.scale.get(source_name, 1.0)
        if src.burst_period_s is not None and src.in_burst(t_s):
            f *= src.burst_factor
        return f

    def expected_requests(self) -> dict:
        """Expected number of allocation requests per source over the run:
        the integral of rate x rate_scale over [start_s, stop_s).  An upper
        bound: pauses at ``limit`` and fallback requests (THP, kvmalloc) are
        not counted.  hugetlb_1g: one request per interval."""
        out = {}
        for s in self.sources:
            if s.info.handler == HUGETLB:
                out[s.name] = float(math.ceil((s.stop_s - s.start_s) / s.interval_s - 1e-9))
                continue
            edges = {s.start_s, s.stop_s}
            for ph in self.phases:
                if s.name in ph.scale:
                    edges.update(min(max(x, s.start_s), s.stop_s) for x in (ph.start_s, ph.stop_s))
            edges = sorted(edges)
            total = 0.0
            for t0, t1 in zip(edges, edges[1:]):
                mid = (t0 + t1) / 2
                f = 1.0
                for ph in self.phases:
                    if ph.start_s <= mid < ph.stop_s:
                        f *= ph.scale.get(s.name, 1.0)
                burst = s.burst_time(t0, t1)
                total += f * ((t1 - t0) + (s.burst_factor - 1.0) * burst)
            out[s.name] = total * s.rate_per_s
        return out

    def describe(self) -> str:
        """A short human-readable table of the scenario."""
        mm = f" (memory map {self.memory_map.name})" if self.memory_map is not None else ""
        lines = [f"scenario {self.name}: {self.memory}{mm}, {self.cpus} cpus, "
                 f"policy {self.policy}, kernel {self.kernel_version}, "
                 f"duration {self.duration_s:g}s"]
        exp = self.expected_requests()
        for s in self.sources:
            orders = ",".join(f"{o}:{p:.2f}" for o, p in zip(s.orders, s.order_probs))
            lines.append(f"  {s.name:20s} {s.kind:16s} {s.rate_per_s:12.1f}/s  orders {orders:24s} "
                         f"lifetime {s.lifetime.describe():28s} ~{exp[s.name]:,.0f} requests")
        lines.append(f"  total ~{sum(exp.values()):,.0f} requests")
        return "\n".join(lines)


def mean_block_bytes(orders, probs) -> float:
    return float(np.sum(np.asarray(probs) * (PAGE_SIZE * np.exp2(np.asarray(orders)))))


# ---------------------------------------------------------------------------
# Value parsers
# ---------------------------------------------------------------------------

_TIME_RE = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
                      r"(ns|us|µs|ms|s|sec|m|min|h|d)\s*$")
_TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
               "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RATE_RE = re.compile(r"^\s*(.*?)\s*/\s*s(?:ec)?\s*$")
_PCT_RE = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+))\s*%\s*$")
#: "<rate or interval> per <size>": scaled linearly with the scenario's memory
_PER_RE = re.compile(r"^\s*(.*?)\s+per\s+(\S+)\s*$")
#: "<percent>%/s": that share of the scenario's memory, in bytes, per second
_PCT_RATE_RE = re.compile(r"^\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*%"
                          r"\s*/\s*s(?:ec)?\s*$")


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def parse_time(text, where="time") -> float:
    """Seconds from '500ms', '30s', '10m', '2h' (or a bare number of seconds).

    ``where`` prefixes the error message (e.g. ``"kbuild.toml: scenario.tick"``).
    """
    if _is_number(text):
        v = float(text)
    else:
        m = _TIME_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise ScenarioError(_pfx(where) + f"expected a time like '30s', got {text!r} "
                                f"(units: ms, s, m, h)")
        v = float(m.group(1)) * _TIME_UNITS[m.group(2)]
    if not math.isfinite(v) or v < 0:
        raise ScenarioError(_pfx(where) + f"expected a time like '30s', got {text!r}")
    return v


def parse_size_value(text, where="size") -> int:
    """Bytes from '8G', '512M', '4K' or an integer byte count."""
    if isinstance(text, bool) or not (isinstance(text, (str, int, np.integer))):
        raise ScenarioError(_pfx(where) + f"expected a size like '8G', got {text!r}")
    try:
        v = parse_size(text if isinstance(text, str) else int(text))
    except ConfigError:
        raise ScenarioError(_pfx(where) + f"expected a size like '8G' (units K, M, G, T), "
                            f"got {text!r}") from None
    if v < 0:
        raise ScenarioError(_pfx(where) + f"expected a size like '8G', got {text!r}")
    return v


def parse_rate(value, mean_block, where="rate", memory_bytes=None) -> float:
    """Arrivals per second from a number, '5000/s', or bytes/s such as
    '200MB/s' (divided by ``mean_block``, the mean bytes per request).

    Relative to the machine's ``memory_bytes``: '0.1%/s' (that share of
    memory in bytes per second), or any of the above followed by
    'per SIZE' ('8000/s per 256G': 8000/s on a 256G machine, scaled
    linearly with memory; exactly the given rate when memory is SIZE)."""
    expected = (f"expected a rate like 50000 (requests/s), '200MB/s', '0.1%/s' or "
                f"'8000/s per 256G', got {value!r}")
    if _is_number(value):
        rate = float(value)
    elif isinstance(value, str) and (m := _PER_RE.match(value)):
        body, ref = m.group(1), m.group(2)
        try:
            ref_bytes = parse_size(ref)
        except ConfigError:
            raise ScenarioError(_pfx(where) + expected) from None
        if ref_bytes <= 0:
            raise ScenarioError(_pfx(where) + f"{value!r}: the size after 'per' must be > 0")
        if memory_bytes is None:
            raise ScenarioError(_pfx(where) + f"{value!r}: a rate relative to memory needs "
                                              f"the scenario's memory size")
        try:
            base = float(body)
        except ValueError:
            try:       # an absolute rate: no '%/s' or 'per' inside
                base = parse_rate(body, mean_block, "")
            except ScenarioError:
                raise ScenarioError(_pfx(where) + expected) from None
        rate = base * (memory_bytes / ref_bytes)    # exactly `base` at the native size
    elif isinstance(value, str) and (m := _PCT_RATE_RE.match(value)):
        if memory_bytes is None:
            raise ScenarioError(_pfx(where) + f"{value!r}: a rate relative to memory needs "
                                              f"the scenario's memory size")
        rate = float(m.group(1)) * memory_bytes / 100 / mean_block
    elif isinstance(value, str) and (m := _RATE_RE.match(value)):
        body = m.group(1)
        try:
            rate = float(body)
        except ValueError:
            try:
                rate = parse_size(body) / mean_block
            except ConfigError:
                raise ScenarioError(_pfx(where) + expected) from None
    else:
        raise ScenarioError(_pfx(where) + expected)
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise ScenarioError(_pfx(where) + f"{value!r} out of range: requests/s must be > 0 "
                            f"and <= {MAX_RATE:g}"
                            + (f" (at memory {format_size(memory_bytes)})"
                               if memory_bytes is not None and isinstance(value, str)
                               and ("%" in value or " per " in value) else ""))
    return rate


def parse_interval(value, memory_bytes, where="interval") -> float:
    """Seconds from a time ('3s'), or a time relative to memory: '3s per 256G'
    is every 3 s on a 256G machine, twice as often on 512G (the attempt
    rate scales linearly with memory; exactly 3 s when memory is 256G)."""
    if isinstance(value, str) and (m := _PER_RE.match(value)):
        t = parse_time(m.group(1), where)
        try:
            ref_bytes = parse_size(m.group(2))
        except ConfigError:
            raise ScenarioError(_pfx(where) + f"expected a time like '3s' or '3s per 256G', "
                                              f"got {value!r}") from None
        if ref_bytes <= 0:
            raise ScenarioError(_pfx(where) + f"{value!r}: the size after 'per' must be > 0")
        return t * (ref_bytes / memory_bytes)        # exactly `t` at the native size
    return parse_time(value, where)


def _pfx(where):
    return f"{where}: " if where else ""


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

SCENARIO_KEYS = ("name", "description", "memory", "memory_map", "memory_map_limit", "cpus",
                 "policy", "kernel_version", "duration", "seed", "sample_interval", "tick",
                 "early_unmovable", *MACHINE_SWITCHES)
SOURCE_KEYS = ("name", "kind", "rate", "orders", "lifetime", "gfp", "start", "stop", "limit",
               "burst", "objects_per_slab", "pinned", "interval")
PHASE_KEYS = ("name", "start", "stop", "scale")
BURST_KEYS = ("period", "length", "factor")
TOP_KEYS = ("scenario", "source", "phase", "spb")


class _Ctx:
    """Where we are: the file label and which key paths came from overrides."""

    def __init__(self, file, overridden=None, base_dir=None):
        self.file = file
        self.overridden = overridden or {}
        self.base_dir = base_dir          # relative paths in the file resolve here

    def err(self, key, msg):
        note = ""
        for path, setting in self.overridden.items():
            if key == path or key.startswith(path + ".") or key.startswith(path + "["):
                note = f" (from --set {setting})"
                break
        where = f"{self.file}: {key}" if self.file else key
        return ScenarioError(f"{where}: {msg}{note}", file=self.file, key=key)

    def where(self, key):
        return f"{self.file}: {key}" if self.file else key

    # typed getters -------------------------------------------------------
    def time(self, key, value):
        try:
            return parse_time(value, "")
        except ScenarioError:
            raise self.err(key, f"expected a time like '30s', got {value!r} "
                                f"(units: ms, s, m, h)") from None

    def size(self, key, value):
        try:
            return parse_size_value(value, "")
        except ScenarioError:
            raise self.err(key, f"expected a size like '8G' (units K, M, G, T), "
                                f"got {value!r}") from None

    def number(self, key, value, lo=None, hi=None, lo_open=False, what="a number"):
        if not _is_number(value) or not math.isfinite(float(value)):
            raise self.err(key, f"expected {what}, got {value!r}")
        v = float(value)
        bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi)
        if bad:
            raise self.err(key, f"{value!r} out of range {_range(lo, hi, lo_open)}")
        return v

    def integer(self, key, value, lo, hi):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise self.err(key, f"expected an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self.err(key, f"{value!r} out of range {lo}..{hi}")
        return int(value)

    def boolean(self, key, value):
        if not isinstance(value, bool):
            raise self.err(key, f"expected true or false, got {value!r}")
        return value

    def string(self, key, value):
        if not isinstance(value, str):
            raise self.err(key, f"expected a string, got {value!r}")
        return value

    def table(self, key, value, known):
        if not isinstance(value, dict):
            raise self.err(key, f"expected a table, got {value!r}")
        for k in value:
            if k not in known:
                raise self.err(_join(key, k), _unknown(k, known))
        return value


def _range(lo, hi, lo_open=False):
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else ''}{lo:g}..{hi:g}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"<= {hi:g}"


def _join(key, sub):
    return f"{key}.{sub}" if key else str(sub)


def _unknown(k, known):
    close = difflib.get_close_matches(str(k), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {k!r}{hint} (known keys: {', '.join(sorted(known))})"


def _check_name(ctx, key, value):
    name = ctx.string(key, value)
    if not NAME_RE.match(name):
        raise ctx.err(key, f"{name!r}: names may use letters, digits, '_' and '-'")
    return name


def _parse_orders(ctx, key, value):
    if isinstance(value, dict):
        if not value:
            raise ctx.err(key, "empty table: give at least one order")
        pairs = []
        for k, w in value.items():
            try:
                o = int(str(k))
            except ValueError:
                raise ctx.err(_join(key, k), f"order {k!r} is not an integer 0..{MAX_ORDER}") \
                    from None
            if not 0 <= o <= MAX_ORDER:
                raise ctx.err(_join(key, k), f"order {o} out of range 0..{MAX_ORDER}")
            wv = ctx.number(_join(key, k), w, lo=0.0, what="a weight >= 0")
            pairs.append((o, wv))
        total = sum(w for _, w in pairs)
        if total <= 0:
            raise ctx.err(key, "weights sum to 0: at least one must be > 0")
        pairs = sorted((o, w) for o, w in pairs if w > 0)
        orders = np.array([o for o, _ in pairs], np.int64)
        probs = np.array([w / total for _, w in pairs], np.float64)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if not 0 <= value <= MAX_ORDER:
            raise ctx.err(key, f"order {value} out of range 0..{MAX_ORDER}")
        orders = np.array([int(value)], np.int64)
        probs = np.array([1.0])
    else:
        raise ctx.err(key, f"expected an order 0..{MAX_ORDER} or a table like "
                           f"{{0 = 0.7, 2 = 0.3}}, got {value!r}")
    return orders, probs


def _parse_lifetime(ctx, key, value):
    if value == "inf" or (isinstance(value, float) and value == math.inf):
        return Lifetime("inf")
    if not isinstance(value, dict):
        raise ctx.err(key, f"expected \"inf\" or a table such as {{dist = \"exp\", mean = \"30s\"}}"
                           f", got {value!r}")
    dist = value.get("dist")
    if dist is None:
        raise ctx.err(key, f"missing key 'dist' (one of: inf, {', '.join(LIFETIME_DISTS)})")
    if dist == "inf":
        ctx.table(key, value, ("dist",))
        return Lifetime("inf")
    if dist not in LIFETIME_DISTS:
        raise ctx.err(_join(key, "dist"), f"unknown distribution {dist!r} "
                                          f"(one of: inf, {', '.join(LIFETIME_DISTS)})")
    names = LIFETIME_DISTS[dist]
    ctx.table(key, value, ("dist",) + names)
    for n in names:
        if n not in value:
            raise ctx.err(key, f"missing key {n!r} for dist = {dist!r} "
                               f"(needs: {', '.join(names)})")
    if dist == "exp":
        mean = ctx.time(_join(key, "mean"), value["mean"])
        if mean <= 0:
            raise ctx.err(_join(key, "mean"), f"{value['mean']!r} out of range: must be > 0")
        return Lifetime("exp", mean, 0.0)
    if dist == "lognormal":
        med = ctx.time(_join(key, "median"), value["median"])
        if med <= 0:
            raise ctx.err(_join(key, "median"), f"{value['median']!r} out of range: must be > 0")
        sigma = ctx.number(_join(key, "sigma"), value["sigma"], lo=0.0, hi=5.0)
        return Lifetime("lognormal", med, sigma)
    if dist == "fixed":
        v = ctx.time(_join(key, "value"), value["value"])
        return Lifetime("fixed", v, 0.0)
    lo = ctx.time(_join(key, "min"), value["min"])
    hi = ctx.time(_join(key, "max"), value["max"])
    if hi < lo:
        raise ctx.err(_join(key, "max"), f"{value['max']!r} is below min {value['min']!r}")
    return Lifetime("uniform", lo, hi)


def _parse_source(ctx, i, raw, sc):
    key = f"source[{i}]"
    ctx.table(key, raw, SOURCE_KEYS)
    for req in ("name", "kind"):
        if req not in raw:
            raise ctx.err(key, f"missing key {req!r}")
    name = _check_name(ctx, f"{key}.name", raw["name"])
    kind = raw["kind"]
    if kind not in KINDS:
        raise ctx.err(f"{key}.kind", f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    info = KINDS[kind]
    duration = sc["duration_s"]

    def only(k, kinds):
        if k in raw and kind not in kinds:
            raise ctx.err(f"{key}.{k}", f"only for kind {' or '.join(kinds)} (this source is {kind})")
    for k, kinds in kind_keys().items():
        only(k, kinds)
    if info.handler == HUGETLB and "orders" in raw:
        raise ctx.err(f"{key}.orders", f"not used by kind {kind} (always one 1 GiB page, "
                                       f"order {HUGETLB_1G_ORDER})")

    if "orders" in raw:
        orders, probs = _parse_orders(ctx, f"{key}.orders", raw["orders"])
    else:
        orders = np.array(sorted(info.default_orders), np.int64)
        w = np.array([info.default_orders[o] for o in orders], np.float64)
        probs = w / w.sum()
    orders.setflags(write=False)
    probs.setflags(write=False)

    interval = None
    if info.handler == HUGETLB:
        if "interval" not in raw:
            raise ctx.err(key, f"missing key 'interval' (kind {kind} makes one 1 GiB "
                               "request per interval)")
        try:
            interval = parse_interval(raw["interval"], sc["memory_bytes"], "")
        except ScenarioError:
            raise ctx.err(f"{key}.interval", f"expected a time like '3s' or '3s per 256G', "
                                             f"got {raw['interval']!r}") from None
        if interval <= 0:
            raise ctx.err(f"{key}.interval", f"{raw['interval']!r} out of range: must be > 0")
        rate = 1.0 / interval          # `rate` is ignored for this kind
    else:
        if "rate" not in raw:
            raise ctx.err(key, "missing key 'rate' (requests/s, or bytes/s like '200MB/s')")
        try:
            rate = parse_rate(raw["rate"], mean_block_bytes(orders, probs), "",
                              sc["memory_bytes"])
        except ScenarioError as e:
            raise ctx.err(f"{key}.rate", str(e)) from None

    lifetime = _parse_lifetime(ctx, f"{key}.lifetime", raw.get("lifetime", "inf"))

    if "gfp" in raw:
        g = raw["gfp"]
        if isinstance(g, (int, np.integer)) and not isinstance(g, bool):
            gfp = int(g)
        elif isinstance(g, str):
            try:
                gfp = G.parse_gfp(g)
            except ValueError as e:
                raise ctx.err(f"{key}.gfp", f"{e} (names as in include/linux/gfp_types.h, "
                                            f"'|'-joined, e.g. 'GFP_KERNEL|__GFP_COMP')") from None
        else:
            raise ctx.err(f"{key}.gfp", f"expected a gfp string like 'GFP_KERNEL', got {g!r}")
        if not 0 <= gfp < (1 << 32):
            raise ctx.err(f"{key}.gfp", f"{g!r} out of range")
        if G.gfp_migratetype(gfp) == 3:
            raise ctx.err(f"{key}.gfp", f"{g!r} sets both __GFP_MOVABLE and __GFP_RECLAIMABLE")
    else:
        gfp = info.default_gfp

    start = ctx.time(f"{key}.start", raw["start"]) if "start" in raw else 0.0
    stop = ctx.time(f"{key}.stop", raw["stop"]) if "stop" in raw else max(duration, start + 1)
    if stop <= start:
        raise ctx.err(f"{key}.stop", f"{raw.get('stop')!r} is not after start {start:g}s")
    # a run shortened with --duration clips its sources: [start, stop) within the run
    # (a source that starts after the end simply never fires)
    start, stop = min(start, duration), min(stop, duration)

    limit_fraction = limit_bytes = None
    if "limit" in raw:
        lv = raw["limit"]
        m = _PCT_RE.match(lv) if isinstance(lv, str) else None
        if m:
            pct = float(m.group(1))
            if not 0 < pct <= 100:
                raise ctx.err(f"{key}.limit", f"{lv!r} out of range (0..100]%")
            limit_fraction = pct / 100
        else:
            try:
                limit_bytes = parse_size_value(lv, "")
            except ScenarioError:
                raise ctx.err(f"{key}.limit", f"expected a share like '40%' or a size like '8G', "
                                              f"got {lv!r}") from None
            if not 0 < limit_bytes <= sc["memory_bytes"]:
                raise ctx.err(f"{key}.limit", f"{lv!r} out of range: must be > 0 and at most "
                                              f"memory ({sc['memory']})")

    period = length = None
    factor = 1.0
    if "burst" in raw:
        b = ctx.table(f"{key}.burst", raw["burst"], BURST_KEYS)
        for req in BURST_KEYS:
            if req not in b:
                raise ctx.err(f"{key}.burst", f"missing key {req!r} (needs: period, length, factor)")
        period = ctx.time(f"{key}.burst.period", b["period"])
        length = ctx.time(f"{key}.burst.length", b["length"])
        if period <= 0:
            raise ctx.err(f"{key}.burst.period", f"{b['period']!r} out of range: must be > 0")
        if not 0 < length <= period:
            raise ctx.err(f"{key}.burst.length", f"{b['length']!r} out of range: must be > 0 and "
                                                 f"at most the period ({b['period']!r})")
        factor = ctx.number(f"{key}.burst.factor", b["factor"], lo=0.0, hi=1e6)

    ops = 1
    if "objects_per_slab" in info.keys:
        ops = ctx.integer(f"{key}.objects_per_slab", raw.get("objects_per_slab", 16), 1, 1 << 16)

    pinned = ctx.number(f"{key}.pinned", raw.get("pinned", 0.0), lo=0.0, hi=1.0,
                        what="a fraction 0..1")
    if pinned > 0 and G.gfp_migratetype(gfp) != 1:
        raise ctx.err(f"{key}.pinned", "only movable sources (gfp with __GFP_MOVABLE) can "
                                       "have pinned pages")

    return Source(name=name, kind=kind, rate_per_s=float(rate), orders=orders,
                  order_probs=probs, lifetime=lifetime, gfp=int(gfp), start_s=start,
                  stop_s=stop, limit_fraction=limit_fraction, limit_bytes=limit_bytes,
                  burst_period_s=period, burst_length_s=length, burst_factor=float(factor),
                  objects_per_slab=ops, pinned=float(pinned), interval_s=interval)


def _parse_phase(ctx, i, raw, sc, source_names):
    key = f"phase[{i}]"
    ctx.table(key, raw, PHASE_KEYS)
    name = _check_name(ctx, f"{key}.name", raw.get("name", f"phase{i}"))
    duration = sc["duration_s"]
    start = ctx.time(f"{key}.start", raw["start"]) if "start" in raw else 0.0
    stop = ctx.time(f"{key}.stop", raw["stop"]) if "stop" in raw else max(duration, start + 1)
    if stop <= start:
        raise ctx.err(f"{key}.stop", f"{raw.get('stop')!r} is not after start {start:g}s")
    start, stop = min(start, duration), min(stop, duration)      # clipped to the run
    scale_raw = raw.get("scale", {})
    if not isinstance(scale_raw, dict):
        raise ctx.err(f"{key}.scale", f"expected a table of source name -> multiplier, "
                                      f"got {scale_raw!r}")
    scale = {}
    for sname, f in scale_raw.items():
        if sname not in source_names:
            raise ctx.err(f"{key}.scale.{sname}", f"no source named {sname!r} "
                                                  f"(sources: {', '.join(source_names)})")
        scale[sname] = ctx.number(f"{key}.scale.{sname}", f, lo=0.0, hi=1e6,
                                  what="a multiplier >= 0")
    return Phase(name=name, start_s=start, stop_s=stop, scale=scale)


def _parse_memory_map(ctx, raw):
    """scenario.memory_map (a built-in map's name or an e820 file) and
    scenario.memory_map_limit -> spbsim.memmap.MemoryMap, or None."""
    if "memory_map" in raw and "scenario.memory" in ctx.overridden \
            and "scenario.memory_map" not in ctx.overridden:
        # --memory (or a sweep's memory axis) resizes the machine: the file's
        # map describes one machine of one size, so the plain layout is used
        return None
    if "memory_map" not in raw:
        if "memory_map_limit" in raw:
            raise ctx.err("scenario.memory_map_limit", "needs memory_map (a built-in map's name "
                                                       "or an e820 file)")
        return None
    name = ctx.string("scenario.memory_map", raw["memory_map"])
    if not name.strip():
        raise ctx.err("scenario.memory_map", "empty: give a built-in map's name or an e820 file")
    limit = raw.get("memory_map_limit")
    if limit is not None:
        try:
            parse_limit(limit)
        except ConfigError:
            raise ctx.err("scenario.memory_map_limit", f"expected an address like 0x4080000000, "
                                                       f"a size like 258G or 'none', got "
                                                       f"{limit!r}") from None
    # a path from the file is relative to the file, one from --set to the current directory
    base_dir = None if "scenario.memory_map" in ctx.overridden else ctx.base_dir
    try:
        return load_memory_map(name.strip(), limit, base_dir)
    except ConfigError as e:
        raise ctx.err("scenario.memory_map", str(e)) from None


def _parse_scenario_table(ctx, raw, default_name):
    key = "scenario"
    ctx.table(key, raw, SCENARIO_KEYS)
    sc = {}
    sc["name"] = _check_name(ctx, "scenario.name", raw.get("name", default_name))
    sc["description"] = ctx.string("scenario.description", raw.get("description", ""))
    mm = _parse_memory_map(ctx, raw)
    mem = raw.get("memory", "16G")
    if mm is None or "memory" in raw:
        nbytes = ctx.size("scenario.memory", mem)
    if mm is not None:
        # an override wins over the file: a map set by --set replaces the file's memory
        file_memory = "scenario.memory" not in ctx.overridden
        map_overridden = "scenario.memory_map" in ctx.overridden
        if "memory" in raw and nbytes != mm.memory and not (map_overridden and file_memory):
            raise ctx.err("scenario.memory", f"{mem!r} differs from the {format_size(mm.memory)} "
                                             f"({mm.memory:#x} bytes) that memory_map "
                                             f"{mm.name!r} gives: with a memory map, leave "
                                             f"memory out")
        nbytes = mm.memory
        sc["memory"] = format_size(nbytes)
    else:
        if not MIN_MEMORY <= nbytes <= MAX_MEMORY:
            raise ctx.err("scenario.memory", f"{mem!r} out of range 1G..4T")
        if nbytes % (2 << 20):
            raise ctx.err("scenario.memory", f"{mem!r} must be a multiple of 2M (a pageblock)")
        sc["memory"] = mem.strip() if isinstance(mem, str) else format_size(nbytes)
    sc["memory_bytes"] = nbytes
    sc["memory_map"] = mm
    sc["cpus"] = ctx.integer("scenario.cpus", raw.get("cpus", 4), 1, MAX_CPUS)
    pol = ctx.string("scenario.policy", raw.get("policy", "stock"))
    try:
        Policy.parse(pol)
    except PolicyError as e:
        raise ctx.err("scenario.policy", str(e)) from None
    sc["policy"] = pol
    kv = raw.get("kernel_version", "recent")
    if isinstance(kv, float):
        kv = repr(kv)
    if kv not in KERNEL_VERSIONS:
        raise ctx.err("scenario.kernel_version", f"{kv!r}: allowed {', '.join(KERNEL_VERSIONS)}")
    sc["kernel_version"] = kv
    sc["switches"] = tuple((k, ctx.boolean(f"scenario.{k}", raw.get(k, d)))
                           for k, d in SWITCH_DEFAULTS.items())
    dur = ctx.time("scenario.duration", raw.get("duration", "60s"))
    if not 0 < dur <= MAX_DURATION_S:
        raise ctx.err("scenario.duration", f"{raw.get('duration')!r} out of range: > 0 and "
                                           f"at most 7 days")
    sc["duration_s"] = dur
    sc["seed"] = ctx.integer("scenario.seed", raw.get("seed", 1), 0, (1 << 63) - 1)
    tick = ctx.time("scenario.tick", raw.get("tick", "10ms"))
    if not MIN_TICK_S - 1e-12 <= tick <= MAX_TICK_S + 1e-12:
        raise ctx.err("scenario.tick", f"{raw.get('tick')!r} out of range 1ms..1s")
    if tick > dur:
        raise ctx.err("scenario.tick", f"{raw.get('tick')!r} is longer than the duration")
    sc["tick_s"] = tick
    si = ctx.time("scenario.sample_interval", raw.get("sample_interval", "1s"))
    if si < tick - 1e-12:
        raise ctx.err("scenario.sample_interval", f"{raw.get('sample_interval')!r} out of range: "
                                                  f"at least one tick ({tick:g}s)")
    sc["sample_interval_s"] = si
    eu = raw.get("early_unmovable", "auto")
    if eu == "auto":
        sc["early_unmovable"] = None
    else:
        v = ctx.size("scenario.early_unmovable", eu)
        if v > nbytes // 2:
            raise ctx.err("scenario.early_unmovable", f"{eu!r} out of range: 0 to half of memory")
        sc["early_unmovable"] = v
    return sc


def _build(data, file_label, default_name, path, overridden):
    where = path or (file_label if file_label and not file_label.startswith("<") else None)
    ctx = _Ctx(file_label, overridden, os.path.dirname(os.path.abspath(where)) if where else None)
    if not isinstance(data, dict):
        raise ctx.err("(top)", "expected a TOML document")
    for k in data:
        if k not in TOP_KEYS:
            raise ctx.err(k, _unknown(k, TOP_KEYS) + " (top-level tables: [scenario], "
                                                    "[[source]], [[phase]])")
    sc = _parse_scenario_table(ctx, data.get("scenario", {}), default_name)
    raw_sources = data.get("source")
    if raw_sources is None:
        raise ctx.err("source", "no [[source]] tables: a scenario needs at least one source")
    if not isinstance(raw_sources, list):
        raise ctx.err("source", "expected an array of tables: write [[source]], not [source]")
    if not raw_sources:
        raise ctx.err("source", "no [[source]] tables: a scenario needs at least one source")
    sources = []
    seen = {}
    for i, rs in enumerate(raw_sources):
        s = _parse_source(ctx, i, rs, sc)
        if s.name in seen:
            raise ctx.err(f"source[{i}].name", f"duplicate source name {s.name!r} "
                                               f"(also source[{seen[s.name]}])")
        seen[s.name] = i
        sources.append(s)
    raw_phases = data.get("phase", [])
    if not isinstance(raw_phases, list):
        raise ctx.err("phase", "expected an array of tables: write [[phase]], not [phase]")
    phases = []
    pseen = {}
    for i, rp in enumerate(raw_phases):
        p = _parse_phase(ctx, i, rp, sc, list(seen))
        if p.name in pseen:
            raise ctx.err(f"phase[{i}].name", f"duplicate phase name {p.name!r} "
                                              f"(also phase[{pseen[p.name]}])")
        pseen[p.name] = i
        phases.append(p)
    sc.pop("memory_bytes")
    raw_spb = data.get("spb", {})
    if not isinstance(raw_spb, dict):
        raise ctx.err("spb", "expected a table: [spb] with switch = value lines")
    from .spb_config import resolve_switches
    from .errors import ConfigError
    for k, v in raw_spb.items():
        try:
            resolve_switches("v1", {k: v})
        except ConfigError as e:
            raise ctx.err(f"spb.{k}", str(e).split(": ", 1)[-1]) from None
    return Scenario(**sc, sources=tuple(sources), phases=tuple(phases), path=path,
                    spb_set=tuple(sorted(raw_spb.items())))


# ---------------------------------------------------------------------------
# Overrides (--set key=value)
# ---------------------------------------------------------------------------

def _override_value(value):
    """'64G' -> '64G', '8' -> 8, 'true' -> True, '{dist="exp", mean="3s"}' -> dict."""
    if not isinstance(value, str):
        return value
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _apply_overrides(data, overrides, file_label):
    """Apply ``{"scenario.memory": "64G", "source.NAME.rate": ...}`` to the raw
    TOML data; returns {canonical key path: "key=value"} for error messages."""
    done = {}
    for key, value in (overrides or {}).items():
        setting = f"{key}={value}"

        def bad(msg):
            where = f"{file_label}: --set {key}" if file_label else f"--set {key}"
            return ScenarioError(f"{where}: {msg}", file=file_label, key=key)

        parts = [p for p in str(key).split(".")]
        if not parts or any(p == "" for p in parts):
            raise bad("expected a key like scenario.memory or source.NAME.rate")
        if parts[0] in SCENARIO_KEYS:
            parts = ["scenario"] + parts
        head = parts[0]
        if head == "scenario":
            if len(parts) != 2:
                raise bad("expected scenario.KEY")
            if parts[1] not in SCENARIO_KEYS:
                raise bad(_unknown(parts[1], SCENARIO_KEYS))
            data.setdefault("scenario", {})[parts[1]] = _override_value(value)
            done[f"scenario.{parts[1]}"] = setting
            continue
        if head in ("source", "phase"):
            if len(parts) < 3:
                raise bad(f"expected {head}.NAME.KEY")
            items = data.get(head)
            if not isinstance(items, list):
                raise bad(f"the scenario has no [[{head}]] tables")
            ident = parts[1]
            idx = next((i for i, it in enumerate(items)
                        if isinstance(it, dict) and it.get("name") == ident), None)
            if idx is None and ident.isdigit() and int(ident) < len(items):
                idx = int(ident)
            if idx is None:
                names = [str(it.get("name")) for it in items if isinstance(it, dict)]
                raise bad(f"no {head} named {ident!r} ({head}s: {', '.join(names)})")
            known = SOURCE_KEYS if head == "source" else PHASE_KEYS
            if parts[2] not in known:
                raise bad(_unknown(parts[2], known))
            node = items[idx]
            for p in parts[2:-1]:
                nxt = node.get(p)
                if not isinstance(nxt, dict):
                    nxt = {}
                    node[p] = nxt
                node = nxt
            node[parts[-1]] = _override_value(value)
            done[f"{head}[{idx}]." + ".".join(parts[2:])] = setting
            continue
        if head == "spb":
            if len(parts) != 2:
                raise bad("expected spb.SWITCH")
            data.setdefault("spb", {})[parts[1]] = _override_value(value)
            done[f"spb.{parts[1]}"] = setting
            continue
        if len(parts) == 1:            # a bare key: a misspelt [scenario] key, most likely
            raise bad(_unknown(head, SCENARIO_KEYS) + " (other keys start with source.NAME., "
                                                      "phase.NAME. or spb.)")
        raise bad(f"unknown section {head!r} (keys start with scenario., source.NAME., "
                  f"phase.NAME. or spb.)")
    return done


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

def builtin_scenarios() -> dict:
    """Built-in scenario names -> paths of their TOML files."""
    if not SCENARIO_DIR.is_dir():
        return {}
    return {p.stem: str(p) for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def _toml_error(label, exc):
    msg = str(exc)
    m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
    if m:
        return ScenarioError(f"{label}:{m.group(1)}: TOML syntax error: {msg}", file=label,
                             key=None)
    return ScenarioError(f"{label}: TOML syntax error: {msg}", file=label, key=None)


def scenario_from_text(text: str, label: str = "<string>", overrides: dict | None = None,
                       path: str | None = None) -> Scenario:
    """Parse and validate scenario TOML text; ``label`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(label, e) from None
    overridden = _apply_overrides(data, overrides, label)
    default_name = Path(label).stem if label and not label.startswith("<") else "scenario"
    if not NAME_RE.match(default_name):
        default_name = "scenario"
    return _build(data, label, default_name, path, overridden)


def load_scenario(path_or_name, overrides: dict | None = None) -> Scenario:
    """Load a scenario from a ``.toml`` path or a built-in's name.

    ``overrides``: ``{"scenario.memory": "64G", "source.pagecache.rate": "2e5",
    "phase.pressure.stop": "90s"}`` (string values are read as TOML values
    when they parse as one, else taken as strings); applied before validation.
    """
    text_path = os.fspath(path_or_name)
    builtins = builtin_scenarios()
    is_file = os.path.isfile(text_path)
    looks_like_path = (text_path.endswith(".toml") or os.sep in text_path
                       or (os.altsep and os.altsep in text_path))
    if is_file:
        path = text_path
        label = text_path
    elif not looks_like_path and text_path in builtins:
        path = builtins[text_path]
        label = os.path.basename(path)
    elif looks_like_path:
        raise ScenarioError(f"{text_path}: no such scenario file", file=text_path)
    else:
        raise ScenarioError(f"unknown scenario {text_path!r}: not a file and not a built-in "
                            f"(built-ins: {', '.join(builtins) or 'none'})", file=None)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ScenarioError(f"{label}: cannot read: {e.strerror}", file=label) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{label}: not UTF-8 text ({e.reason} at byte {e.start})",
                            file=label) from None
    return scenario_from_text(text, label, overrides, path=os.path.abspath(path))
