"""Placement policies by name: ``stock[:PRESET]`` and ``spb[:PRESET][,SWITCH=VALUE...]``.

``Policy.parse(text)`` is the one place a policy string is parsed and checked;
it returns an immutable ``Policy`` (kind, preset, switch overrides, resolved SPB
switches, the Machine keywords).  ``stock`` is mainline v6.19/7.0, ``stock:6.12``
the 6.12 LTS kernel, ``stock:6.1``, ``stock:defrag`` (vm.defrag_mode = 1),
``stock:noboost`` (vm.watermark_boost_factor = 0), ``stock:pcpbuddy`` (Johannes
Weiner's PCPBuddy on the stock allocator); ``spb:s1|v1|v1-pre43|v2``
(``spb`` = ``spb:v1``) is the superpageblock allocator with watermark boosting
off, as the posted series removed it (spec §5.8).  Tables: README.md, docs/spb.md.
"""
import re
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import ConfigError
from .spb_config import SPB_DEFAULT_PRESET, SPB_PRESET_NAMES, resolve_switches

__all__ = ["Policy", "PolicyError", "STOCK_PRESETS", "SPB_POLICY_PRESETS", "known_policies",
           "policy_overrides"]

#: stock presets: Machine keywords on top of the scenario ("" is plain ``stock``)
STOCK_PRESETS = {
    "": {},
    "6.12": {"version": "6.12"},
    "6.1": {"version": "6.1"},
    "defrag": {"defrag_mode": True},
    "noboost": {"watermark_boost_factor": 0},
    "pcpbuddy": {"pcpbuddy": True},
}

#: SPB preset names (spbsim.mm.spb.params.SPB_PRESETS)
SPB_POLICY_PRESETS = SPB_PRESET_NAMES

#: characters a switch value may have in a policy string
_VALUE_RE = re.compile(r"[A-Za-z0-9_.-]+")


def known_policies():
    return (["stock" + (":" + k if k else "") for k in STOCK_PRESETS]
            + ["spb"] + ["spb:" + k for k in SPB_POLICY_PRESETS])


class PolicyError(ConfigError):
    """A policy string that does not parse: ``policy 'TEXT': DETAIL``."""

    def __init__(self, text, detail):
        super().__init__(f"policy {text!r}: {detail}")
        self.text, self.detail = text, detail

    def __reduce__(self):               # picklable: errors cross to the sweep's client
        return PolicyError, (self.text, self.detail)


@dataclass(frozen=True)
class Policy:
    """One parsed policy.  ``text`` is the string as written (results, directory
    names and sweep cell keys use it); two spellings of one policy (``spb`` and
    ``spb:v1``) compare equal.  ``overrides``: (switch, value as written) pairs
    after the commas, last one wins; ``switches``: every SPB switch of the preset
    with the overrides applied (empty for stock)."""
    kind: str                       # "stock" or "spb"
    preset: str                     # stock: "" or a STOCK_PRESETS key; spb: never ""
    overrides: tuple = ()
    switches: tuple = ()
    text: str = field(default="", compare=False)

    @staticmethod
    @lru_cache(maxsize=256)
    def parse(text):
        """The Policy for ``text``; PolicyError (a ConfigError) naming the bad part."""
        text = str(text)
        head, *items = text.split(",")
        kind, colon, preset = head.partition(":")
        available = f"available: {', '.join(known_policies())}"
        if kind not in ("stock", "spb"):
            raise PolicyError(text, f"unknown; {available}")
        presets = STOCK_PRESETS if kind == "stock" else SPB_POLICY_PRESETS
        if colon and preset not in presets or colon and not preset:
            raise PolicyError(text, f"unknown preset {preset!r} after {kind!r}; {available}")
        if items and kind != "spb":
            raise PolicyError(text, "switches after ',' exist only for spb policies")
        if kind == "stock":
            return Policy("stock", preset, text=text)
        overrides = {}
        for item in items:
            k, eq, v = item.partition("=")
            if not eq or not k:
                raise PolicyError(text, f"{item!r} is not SWITCH=VALUE")
            overrides[k] = v
        try:
            preset, sw = resolve_switches(preset or SPB_DEFAULT_PRESET, overrides)
        except ConfigError as e:
            raise PolicyError(text, str(e)) from None
        for k, v in overrides.items():
            if not _VALUE_RE.fullmatch(v):     # e.g. "+4", which int() would take
                raise PolicyError(text, f"{k}={v}: a value is letters, digits, '_', '.' or '-'")
        return Policy("spb", preset, tuple(overrides.items()), tuple(sw.items()), text=text)

    @property
    def canonical(self):
        """The policy spelled out: ``spb`` -> ``spb:v1``, one ``,k=v`` per switch set."""
        head = self.kind + (":" + self.preset if self.preset else "")
        return head + "".join(f",{k}={v}" for k, v in self.overrides)

    def machine_kwargs(self):
        """Machine keywords of this policy (a new dict each call)."""
        if self.kind == "stock":
            return dict(STOCK_PRESETS[self.preset])
        kw = {"spb": self.preset, "watermark_boost_factor": 0}
        if self.overrides:
            kw["spb_set"] = dict(self.overrides)
        return kw

    def __str__(self):
        return self.text or self.canonical


def policy_overrides(policy):
    """Machine keyword overrides for a policy name; ConfigError if unknown.
    Kept for one release: use ``Policy.parse(policy).machine_kwargs()``."""
    return Policy.parse(str(policy)).machine_kwargs()
