"""Real machine memory maps: an x86 e820 table (the ``BIOS-e820: [mem
0x...-0x...] type`` lines of dmesg) as the arguments of build_geometry().

Only ``usable`` is RAM.  Whole pageblocks with no usable page become holes,
the other non-usable pages reserved ranges (page granular), so firmware
ranges taint the superpageblocks they fall in as on the real machine.
Built-in maps: ``spbsim/scenarios/memmaps/<name>.e820``; docs/model.md.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .mm.geometry import MAX_MEMORY, MIN_MEMORY, build_geometry, format_size, parse_size
from .mm.zone_setup import _subtract      # ranges minus ranges (zones' reservations, map gaps)

__all__ = ["MemoryMap", "parse_e820", "load_memory_map", "builtin_memory_maps",
           "parse_limit", "MEMMAP_DIR"]

MEMMAP_DIR = Path(__file__).resolve().parent / "scenarios" / "memmaps"
PAGE = 4096
PAGEBLOCK = 2 << 20
FOUR_G = 4 << 30
MIN_LOW_MEMORY = 256 << 20          # build_geometry's lower bound on low_memory

#: the defaults Machine() gives build_geometry (tests/test_memmap.py checks they agree)
GEOMETRY_DEFAULTS = {"firmware_reserved": "1M", "kernel_image": "48M",
                     "memmap_bytes_per_page": 64}

#: anything before the tag (a dmesg timestamp, a syslog "host kernel:" prefix)
_PREFIX = r"^(?:.*?[\s\]])?(?:BIOS-e820|e820)\s*:\s*"
#: v2.6.26+: [mem 0xSTART-0xEND] TYPE, END inclusive
_MEM_RE = re.compile(_PREFIX + r"\[mem\s+0x([0-9a-fA-F]+)\s*-\s*0x([0-9a-fA-F]+)\]\s*(\S.*?)\s*$")
#: older kernels: START - END (TYPE), END exclusive
_OLD_RE = re.compile(_PREFIX + r"([0-9a-fA-F]{8,16})\s+-\s+([0-9a-fA-F]{8,16})\s+\((.+)\)\s*$")
_LIMIT_RE = re.compile(r"^#\s*limit\s*:\s*(\S+)\s*$", re.I)


def _up(x, a):
    return -(-x // a) * a


def _down(x, a):
    return x // a * a


def parse_limit(value, what="limit"):
    """Bytes from 0x4080000000, 258G or an integer; None for None/'none'."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected an address like 0x4080000000 or a size like "
                          f"258G, got {value!r}")
    if isinstance(value, int):
        v = value
    else:
        text = str(value).strip()
        try:
            v = int(text, 0)
        except ValueError:
            try:
                v = parse_size(text, what)
            except ConfigError:
                raise ConfigError(f"{what}: expected an address like 0x4080000000 or a size "
                                  f"like 258G, got {value!r}") from None
    if v <= 0:
        raise ConfigError(f"{what}: {value!r} must be > 0")
    return v


@dataclass(frozen=True)
class MemoryMap:
    """A parsed map and the layout it gives (bytes).

    ``usable``: RAM ranges trimmed to whole pages and merged, ((start, end), ...);
    ``holes``: whole pageblocks with no usable page outside the [low_memory,
    4 GiB) gap, ((start, size), ...); ``reserved``: the non-usable pages of
    pageblocks that have usable pages, ((start, size), ...).
    """
    name: str
    path: str
    limit: int | None
    memory: int
    low_memory: int
    usable: tuple
    holes: tuple
    reserved: tuple

    @property
    def hole_bytes(self):
        return sum(n for _, n in self.holes)

    @property
    def reserved_bytes(self):
        return sum(n for _, n in self.reserved)

    def describe(self):
        """For params.json: the name and what the map gives."""
        return {"name": self.name, "limit": None if self.limit is None else hex(self.limit),
                "memory": format_size(self.memory), "low_memory": format_size(self.low_memory),
                "holes": len(self.holes), "hole_bytes": self.hole_bytes,
                "reserved_ranges": len(self.reserved), "reserved_bytes": self.reserved_bytes}

    def machine_kwargs(self, firmware_reserved=None, kernel_image=None,
                       memmap_bytes_per_page=None):
        """memory, low_memory, holes and reserved for Machine()/build_geometry().

        The default reservations (firmware's first MiB, the kernel image at
        16 MiB, the memmap at the top of RAM) stay where build_geometry puts
        them; the map's reserved pages they already cover are left out, so no
        page is reserved twice (init_zones counts every range's pages)."""
        kw = dict(GEOMETRY_DEFAULTS)
        for k, v in (("firmware_reserved", firmware_reserved), ("kernel_image", kernel_image),
                     ("memmap_bytes_per_page", memmap_bytes_per_page)):
            if v is not None:
                kw[k] = v
        base = build_geometry(self.memory, low_memory=self.low_memory, holes=self.holes, **kw)
        cuts = [(s << 12, e << 12) for s, e, _ in base.reserved]
        reserved = []
        for s, n in self.reserved:
            for a, b in _subtract([(s, s + n)], cuts):
                reserved.append((a, b - a))
        return {"memory": self.memory, "low_memory": self.low_memory,
                "holes": self.holes, "reserved": tuple(reserved)}


def _merge(ranges):
    out = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def parse_e820(text, label="<e820>", limit=None, name=None):
    """Parse e820 text into a :class:`MemoryMap`.

    Blank lines and ``#`` comments are skipped; ``# limit: ADDR`` sets the
    default limit (``limit`` overrides it; 'none' drops it): everything at or
    above it is ignored (one node of a two-node machine).  Errors:
    ConfigError ``LABEL:LINE: what is wrong``.
    """
    entries = []                 # (start, end exclusive, usable, lineno)
    file_limit = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = _LIMIT_RE.match(stripped)
            if m:
                try:
                    file_limit = parse_limit(m.group(1), "limit")
                except ConfigError as e:
                    raise ConfigError(f"{label}:{lineno}: {e}") from None
            continue
        m = _MEM_RE.match(line)
        if m:
            start, end, kind = int(m.group(1), 16), int(m.group(2), 16) + 1, m.group(3)
        else:
            m = _OLD_RE.match(line)
            if not m:
                raise ConfigError(f"{label}:{lineno}: not an e820 line: {stripped[:80]!r} "
                                  f"(expected 'BIOS-e820: [mem 0xSTART-0xEND] TYPE')")
            start, end, kind = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if end <= start:
            raise ConfigError(f"{label}:{lineno}: empty or reversed range "
                              f"[{start:#x}, {end:#x})")
        entries.append((start, end, kind.strip().lower() == "usable", lineno))
    if not entries:
        raise ConfigError(f"{label}: no e820 lines")
    by_start = sorted(entries)
    for a, b in zip(by_start, by_start[1:]):
        if b[0] < a[1]:
            raise ConfigError(f"{label}:{b[3]}: range [{b[0]:#x}, {b[1]:#x}) overlaps "
                              f"[{a[0]:#x}, {a[1]:#x}) of line {a[3]}")
    lim = file_limit if limit is None else parse_limit(limit)    # 'none': the whole map
    usable = []
    for s, e, ram, _ in by_start:
        if lim is not None:
            e = min(e, lim)
        s, e = _up(s, PAGE), _down(e, PAGE)       # memblock: whole pages only
        if ram and s < e:
            usable.append((s, e))
    usable = _merge(usable)
    where = label if lim is None else f"{label} (below limit {lim:#x})"
    if not usable:
        raise ConfigError(f"{where}: no usable memory")
    low_ranges = [(s, min(e, FOUR_G)) for s, e in usable if s < FOUR_G]
    high_ranges = [(max(s, FOUR_G), e) for s, e in usable if e > FOUR_G]
    if not low_ranges:
        raise ConfigError(f"{where}: no usable memory below 4 GiB (spbsim's layout starts "
                          f"RAM at 0)")
    low = _up(low_ranges[-1][1], PAGEBLOCK)
    if low < MIN_LOW_MEMORY:
        raise ConfigError(f"{where}: usable memory below 4 GiB ends at "
                          f"{low_ranges[-1][1]:#x}; spbsim needs at least 256M there")
    end = _up(high_ranges[-1][1], PAGEBLOCK) if high_ranges else low
    memory = low + (end - FOUR_G if high_ranges else 0)
    if not MIN_MEMORY <= memory <= MAX_MEMORY:
        raise ConfigError(f"{where}: the map gives {format_size(memory)} of memory "
                          f"({memory:#x} bytes); allowed 1G to 4T")
    gaps = _subtract([(0, low)], low_ranges)
    if high_ranges:
        gaps += _subtract([(FOUR_G, end)], high_ranges)
    holes, reserved = [], []
    for a, b in gaps:
        ha, hb = _up(a, PAGEBLOCK), _down(b, PAGEBLOCK)
        if ha < hb:
            holes.append((ha, hb - ha))
            pieces = [(a, ha), (hb, b)]
        else:
            pieces = [(a, b)]
        reserved += [(s, e - s) for s, e in pieces if s < e]
    return MemoryMap(name=name or label, path=label, limit=lim, memory=memory, low_memory=low,
                     usable=tuple(usable), holes=tuple(holes), reserved=tuple(reserved))


def builtin_memory_maps():
    """Built-in map names -> paths (``spbsim/scenarios/memmaps/*.e820``)."""
    if not MEMMAP_DIR.is_dir():
        return {}
    return {p.stem: str(p) for p in sorted(MEMMAP_DIR.glob("*.e820"))}


def load_memory_map(name_or_path, limit=None, base_dir=None):
    """A built-in map's name or a file path (relative paths: against
    ``base_dir``, default the current directory) -> :class:`MemoryMap`."""
    text_path = os.fspath(name_or_path)
    builtins = builtin_memory_maps()
    looks_like_path = (os.sep in text_path or (os.altsep and os.altsep in text_path)
                       or "." in os.path.basename(text_path))
    if not looks_like_path and text_path in builtins:
        path, label, name = builtins[text_path], os.path.basename(builtins[text_path]), text_path
    elif looks_like_path:
        path = text_path if os.path.isabs(text_path) else os.path.join(base_dir or ".", text_path)
        label, name = text_path, text_path
        if not os.path.isfile(path):
            raise ConfigError(f"{text_path}: no such memory map file"
                              + (f" (looked in {base_dir})" if base_dir else ""))
    else:
        raise ConfigError(f"unknown memory map {text_path!r}: not a built-in (built-ins: "
                          f"{', '.join(builtins) or 'none'}); give a path to an e820 file "
                          f"(with a '/' or an extension)")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{label}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return parse_e820(text, label, limit, name=name)
