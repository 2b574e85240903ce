"""/proc and debugfs text files of the page allocator: renderers and parsers.

Renderers print exactly what mm/vmstat.c prints on v6.12 (``frag_show_print``,
``pagetypeinfo_showfree_print``, ``pagetypeinfo_showblockcount_print``,
``unusable_show_print``, ``extfrag_show_print``, ``vmstat_show``,
``zoneinfo_show_print``) from plain numbers and numpy arrays.  The parsers read
the same files back and raise :class:`ProcFormatError` on anything else.  Each
handles one node (``node=`` picks one of a multi-node file); the number of
orders comes from the array shape or the file.
"""

from __future__ import annotations

import os
import re
from collections import namedtuple
from typing import Mapping, Sequence

import numpy as np

from ..errors import SpbsimError

__all__ = [
    "ProcFormatError",
    "ContigPageInfo",
    "MIGRATETYPE_NAMES",
    "PAGETYPEINFO_FREECOUNT_CAP",
    "ZONEINFO_WMARK_KEYS",
    "fill_contig_page_info",
    "unusable_free_index",
    "fragmentation_index",
    "extfrag_for_order",
    "unusable_index_table",
    "fragmentation_index_table",
    "render_buddyinfo",
    "render_pagetypeinfo",
    "render_unusable_index",
    "render_extfrag_index",
    "render_vmstat",
    "render_zoneinfo",
    "parse_buddyinfo",
    "parse_pagetypeinfo",
    "parse_index_file",
    "parse_vmstat",
    "parse_zoneinfo",
    "parse_meminfo",
    "read_snapshot",
]

#: ``migratetype_names[]`` of a kernel with CONFIG_MEMORY_ISOLATION=y and CONFIG_CMA=n
#: (the 6.12 oracle).  With CONFIG_CMA=y "CMA" sits between "HighAtomic" and "Isolate".
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")

#: ``pagetypeinfo_showfree_print`` stops walking a free list at this many entries
#: and prints ``">100000"``.
PAGETYPEINFO_FREECOUNT_CAP = 100000

_U64 = (1 << 64) - 1


class ProcFormatError(SpbsimError, ValueError):
    """Malformed /proc text: names the source, the 1-based line and what was expected."""

    def __init__(self, source: str, lineno: int, expected: str, line: str | None = None):
        self.source = source
        self.lineno = lineno
        self.expected = expected
        self.line = line
        msg = f"{source}:{lineno}: expected {expected}"
        if line is not None:
            msg += f", got {line!r}"
        super().__init__(msg)


# ---------------------------------------------------------------------------
# Fragmentation metrics (mm/vmstat.c)
# ---------------------------------------------------------------------------

ContigPageInfo = namedtuple(
    "ContigPageInfo", "free_pages free_blocks_total free_blocks_suitable")
ContigPageInfo.__doc__ = "struct contig_page_info of mm/vmstat.c."


def fill_contig_page_info(nr_free_row, suitable_order: int) -> ContigPageInfo:
    """``fill_contig_page_info()``: totals over ``free_area[o].nr_free`` of one zone."""
    free_pages = free_blocks_total = free_blocks_suitable = 0
    for order, blocks in enumerate(nr_free_row):
        blocks = int(blocks)
        free_blocks_total += blocks
        free_pages += blocks << order
        if order >= suitable_order:
            free_blocks_suitable += blocks << (order - suitable_order)
    return ContigPageInfo(free_pages, free_blocks_total, free_blocks_suitable)


def unusable_free_index(nr_free_row, order: int) -> int:
    """``unusable_free_index()`` x1000: share of free pages in blocks smaller than ``order``."""
    info = fill_contig_page_info(nr_free_row, order)
    if info.free_pages == 0:
        return 1000
    return (info.free_pages - (info.free_blocks_suitable << order)) * 1000 // info.free_pages


def fragmentation_index(nr_free_row, order: int) -> int:
    """``__fragmentation_index()`` x1000 (-1000 when a block of ``order`` is free).

    Not clamped: with very few free blocks the kernel formula goes negative
    (down to -999), and the debugfs file prints that as e.g. ``" 0.-500"``.
    """
    if order >= len(nr_free_row):  # WARN_ON_ONCE(order > MAX_PAGE_ORDER)
        return 0
    info = fill_contig_page_info(nr_free_row, order)
    if info.free_blocks_total == 0:
        return 0
    if info.free_blocks_suitable:
        return -1000
    requested = 1 << order
    return 1000 - (1000 + info.free_pages * 1000 // requested) // info.free_blocks_total


def extfrag_for_order(nr_free_row, order: int) -> int:
    """``extfrag_for_order()`` x100, as used by proactive compaction."""
    info = fill_contig_page_info(nr_free_row, order)
    if info.free_pages == 0:
        return 0
    return (info.free_pages - (info.free_blocks_suitable << order)) * 100 // info.free_pages


def _index_table(nr_free, fn) -> np.ndarray:
    nr_free = _as_2d(nr_free)
    nz, norders = nr_free.shape
    out = np.empty((nz, norders), dtype=np.int64)
    for z in range(nz):
        row = nr_free[z].tolist()
        for o in range(norders):
            out[z, o] = fn(row, o)
    return out


def unusable_index_table(nr_free) -> np.ndarray:
    """``unusable_free_index`` x1000 for every zone and order: int64 ``[zone, order]``."""
    return _index_table(nr_free, unusable_free_index)


def fragmentation_index_table(nr_free) -> np.ndarray:
    """``__fragmentation_index`` x1000 for every zone and order: int64 ``[zone, order]``."""
    return _index_table(nr_free, fragmentation_index)


# ---------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------

def _as_2d(a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"expected a [zone, order] array, got shape {a.shape}")
    return a


def _ul(v) -> int:
    """Value as ``%lu`` prints it (two's complement for negative numbers)."""
    v = int(v)
    return v & _U64 if v < 0 else v


def _c_div_mod(a: int, b: int) -> tuple[int, int]:
    """C integer ``/`` and ``%`` (truncation toward zero)."""
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return q, a - q * b


def _check_zones(zone_names, n: int) -> None:
    if len(zone_names) != n:
        raise ValueError(f"{len(zone_names)} zone names for {n} zone rows")


def render_buddyinfo(zone_names: Sequence[str], nr_free, node: int = 0) -> str:
    """/proc/buddyinfo (``frag_show_print``): ``nr_free[zone, order]`` blocks per order."""
    nr_free = _as_2d(nr_free)
    _check_zones(zone_names, nr_free.shape[0])
    out = []
    for name, row in zip(zone_names, nr_free.tolist()):
        out.append("Node %d, zone %8s " % (node, name))
        out.append("".join("%6lu " % _ul(b) for b in row))
        out.append("\n")
    return "".join(out)


def render_pagetypeinfo(zone_names: Sequence[str], free_count, block_count,
                        mt_names: Sequence[str] = MIGRATETYPE_NAMES,
                        pageblock_order: int = 9, node: int = 0,
                        mixed_count=None) -> str:
    """/proc/pagetypeinfo of one node (``pagetypeinfo_show``).

    ``free_count[zone, mt, order]`` = entries on ``free_area[order].free_list[mt]``
    (printed as ``">100000"`` from 100000 on, as the kernel caps its list walk);
    ``block_count[zone, mt]`` = pageblocks per migratetype; ``mixed_count[zone, mt]``
    only with CONFIG_PAGE_OWNER and page_owner=on.
    """
    free_count = np.asarray(free_count)
    block_count = np.asarray(block_count)
    nz, nmt = len(zone_names), len(mt_names)
    if free_count.ndim != 3 or free_count.shape[:2] != (nz, nmt):
        raise ValueError(f"free_count shape {free_count.shape} != ({nz}, {nmt}, orders)")
    if block_count.shape != (nz, nmt):
        raise ValueError(f"block_count shape {block_count.shape} != ({nz}, {nmt})")
    norders = free_count.shape[2]
    out = ["Page block order: %d\n" % pageblock_order,
           "Pages per block:  %lu\n" % (1 << pageblock_order),
           "\n",
           "%-43s " % "Free pages count per migrate type at order",
           "".join("%6d " % o for o in range(norders)), "\n"]
    fc = free_count.tolist()
    for z, name in enumerate(zone_names):
        for mt, mtname in enumerate(mt_names):
            out.append("Node %4d, zone %8s, type %12s " % (node, name, mtname))
            for cnt in fc[z][mt]:
                cnt = _ul(cnt)
                if cnt >= PAGETYPEINFO_FREECOUNT_CAP:
                    out.append(">%6lu " % PAGETYPEINFO_FREECOUNT_CAP)
                else:
                    out.append("%6lu " % cnt)
            out.append("\n")
    sections = [("Number of blocks type ", block_count)]
    if mixed_count is not None:
        mixed_count = np.asarray(mixed_count)
        if mixed_count.shape != (nz, nmt):
            raise ValueError(f"mixed_count shape {mixed_count.shape} != ({nz}, {nmt})")
        sections.append(("Number of mixed blocks ", mixed_count))
    for title, counts in sections:
        out.append("\n%-23s" % title)
        out.append("".join("%12s " % n for n in mt_names))
        out.append("\n")
        for name, row in zip(zone_names, counts.tolist()):
            out.append("Node %d, zone %8s " % (node, name))
            out.append("".join("%12lu " % _ul(c) for c in row))
            out.append("\n")
    return "".join(out)


def _render_index(zone_names, table, fmt, node) -> str:
    _check_zones(zone_names, table.shape[0])
    out = []
    for name, row in zip(zone_names, table.tolist()):
        out.append("Node %d, zone %8s " % (node, name))
        out.append("".join(fmt % _c_div_mod(v, 1000) for v in row))
        out.append("\n")
    return "".join(out)


def render_unusable_index(zone_names: Sequence[str], nr_free, node: int = 0) -> str:
    """debugfs extfrag/unusable_index (``unusable_show_print``) from ``nr_free[zone, order]``."""
    return _render_index(zone_names, unusable_index_table(nr_free), "%d.%03d ", node)


def render_extfrag_index(zone_names: Sequence[str], nr_free, node: int = 0) -> str:
    """debugfs extfrag/extfrag_index (``extfrag_show_print``) from ``nr_free[zone, order]``."""
    return _render_index(zone_names, fragmentation_index_table(nr_free), "%2d.%03d ", node)


def render_vmstat(counters: Mapping[str, int]) -> str:
    """/proc/vmstat (``vmstat_show``): one ``"%s %lu\\n"`` line per counter, in the given order."""
    return "".join("%s %lu\n" % (name, _ul(v)) for name, v in counters.items())


#: Lines of the watermark block of a zone, in ``zoneinfo_show_print`` order after
#: "pages free".  boost (v5.0+), promo (v6.1+) and cma (v5.8+) are absent on older kernels.
ZONEINFO_WMARK_KEYS = ("boost", "min", "low", "high", "promo",
                       "spanned", "present", "managed", "cma")


def render_zoneinfo(zones: Mapping[str, Mapping], node: int = 0) -> str:
    """/proc/zoneinfo of one node (``zoneinfo_show_print``), for every zone given.

    ``zones`` maps zone name -> dict with the keys :func:`parse_zoneinfo` returns:
    ``free``, the ``ZONEINFO_WMARK_KEYS`` (min/low/high/promo include the boost),
    ``protection`` (lowmem_reserve list) and, for a populated zone, ``stats``
    (zone then NUMA vmstat items, name -> value), ``pagesets`` (list of dicts
    ``cpu, count, high, batch``, optionally ``high_min, high_max`` (printed
    by newer kernels, 6.18) and ``stat_threshold``),
    ``node_unreclaimable`` (default 0) and ``start_pfn``; ``node_stats`` (name ->
    value) on the node's first populated zone.  A zone is printed as unpopulated
    (ending after ``protection``) when it has no ``start_pfn``.

    Lines whose data is not given are left out: the whole "per-node stats" block
    without ``node_stats``, any vmstat item missing from ``stats``, any watermark
    key missing (e.g. promo/cma), "vm stats threshold" without ``stat_threshold``.
    Each line that is printed is formatted as the kernel formats it.
    """
    out = []
    for name, z in zones.items():
        out.append("Node %d, zone %8s" % (node, name))
        node_stats = z.get("node_stats")
        if node_stats is not None:
            out.append("\n  per-node stats")
            out.extend("\n      %-12s %lu" % (k, _ul(v)) for k, v in node_stats.items())
        out.append("\n  pages free     %lu" % _ul(z["free"]))
        for key in ZONEINFO_WMARK_KEYS:
            if z.get(key) is not None:
                out.append("\n        %-8s %lu" % (key, _ul(z[key])))
        prot = [int(p) for p in z["protection"]]
        out.append("\n        protection: (%ld" % prot[0])
        out.extend(", %ld" % p for p in prot[1:])
        out.append(")")
        if z.get("start_pfn") is None:
            out.append("\n")
            continue
        out.extend("\n      %-12s %lu" % (k, _ul(v)) for k, v in (z.get("stats") or {}).items())
        out.append("\n  pagesets")
        for pcp in z.get("pagesets") or ():
            if pcp.get("high_min") is not None:     # newer kernels (6.18)
                out.append("\n    cpu: %i"
                           "\n              count:    %i"
                           "\n              high:     %i"
                           "\n              batch:    %i"
                           "\n              high_min: %i"
                           "\n              high_max: %i"
                           % (pcp["cpu"], pcp["count"], pcp["high"], pcp["batch"],
                              pcp["high_min"], pcp["high_max"]))
            else:
                out.append("\n    cpu: %i"
                           "\n              count: %i"
                           "\n              high:  %i"
                           "\n              batch: %i"
                           % (pcp["cpu"], pcp["count"], pcp["high"], pcp["batch"]))
            if pcp.get("stat_threshold") is not None:
                out.append("\n  vm stats threshold: %d" % pcp["stat_threshold"])
        out.append("\n  node_unreclaimable:  %u" % int(z.get("node_unreclaimable", 0)))
        out.append("\n  start_pfn:           %lu" % _ul(z["start_pfn"]))
        out.append("\n")
    return "".join(out)


# ---------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------

_ZONE_HDR = re.compile(r"Node (\d+), zone +(\S+) ")


def _lines(text: str, source: str) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(f"{source}: expected str, got {type(text).__name__}")
    if text and not text.endswith("\n"):
        lines = text.split("\n")
        raise ProcFormatError(source, len(lines), "a line ending in '\\n' (truncated file?)",
                              lines[-1])
    return text.split("\n")[:-1]


def _pick_node(rows, node, source, what):
    """Keep rows of ``node``; with node=None all rows must be on one node."""
    nodes = sorted({r[0] for r in rows})
    if node is None:
        if len(nodes) > 1:
            other = next(r for r in rows if r[0] != rows[0][0])
            raise ProcFormatError(source, other[1],
                                  f"a single node in {what} (found nodes {nodes}; pass node=)")
        return rows
    return [r for r in rows if r[0] == node]


def _numbers(rest: str, source: str, lineno: int, line: str, n=None, what="numbers"):
    if not rest.endswith(" "):
        raise ProcFormatError(source, lineno, f"{what} each followed by a space", line)
    vals = []
    for t in rest.split():
        if not t.isdigit():
            raise ProcFormatError(source, lineno, f"{what} (unsigned integers), not {t!r}", line)
        vals.append(int(t))
    if n is not None and len(vals) != n:
        raise ProcFormatError(source, lineno, f"{n} {what}, found {len(vals)}", line)
    return vals


def parse_buddyinfo(text: str, source: str = "<string>", node: int | None = None):
    """Parse /proc/buddyinfo -> ``(zone_names, nr_free)``, ``nr_free`` int64 ``[zone, order]``."""
    rows = []
    norders = None
    for i, line in enumerate(_lines(text, source), 1):
        m = _ZONE_HDR.match(line)
        if not m:
            raise ProcFormatError(source, i, "'Node N, zone NAME ' followed by free block counts",
                                  line)
        vals = _numbers(line[m.end():], source, i, line, norders, "free block counts")
        if norders is None:
            if not vals:
                raise ProcFormatError(source, i, "at least one free block count", line)
            norders = len(vals)
        rows.append((int(m.group(1)), i, m.group(2), vals))
    rows = _pick_node(rows, node, source, "buddyinfo")
    nr_free = np.array([r[3] for r in rows], dtype=np.int64).reshape(len(rows), norders or 0)
    return [r[2] for r in rows], nr_free


_PTI_FREE = re.compile(r"Node +(\d+), zone +(\S+), type +(\S+) ")
_PTI_FREE_TOKEN = re.compile(r">?(\d+)")
_PTI_FREE_HDR = "%-43s " % "Free pages count per migrate type at order"


class _Cursor:
    """Line cursor over a /proc file; ``expect`` raises ProcFormatError at the current line."""

    def __init__(self, text: str, source: str):
        self.lines = _lines(text, source)
        self.source = source
        self.i = 0

    @property
    def line(self) -> str | None:
        return self.lines[self.i] if self.i < len(self.lines) else None

    def expect(self, cond, what: str):
        if not cond:
            line = self.line
            raise ProcFormatError(self.source, self.i + 1, what,
                                  "<end of file>" if line is None else line)
        return cond


def _pti_header(cur: _Cursor) -> tuple[int, int]:
    """"Page block order" .. "Free pages count" header -> (pageblock_order, norders)."""
    m = cur.expect(re.fullmatch(r"Page block order: (\d+)", cur.line or ""),
                   "'Page block order: N'")
    pb_order = int(m.group(1))
    cur.i += 1
    m = cur.expect(re.fullmatch(r"Pages per block:  (\d+)", cur.line or ""),
                   "'Pages per block:  N'")
    cur.expect(int(m.group(1)) == 1 << pb_order, f"Pages per block == 1 << {pb_order}")
    cur.i += 1
    cur.expect(cur.line == "", "an empty line")
    cur.i += 1
    cur.expect((cur.line or "").startswith(_PTI_FREE_HDR), f"{_PTI_FREE_HDR.strip()!r} header")
    orders = _numbers(cur.line[len(_PTI_FREE_HDR):], cur.source, cur.i + 1, cur.line, None,
                      "order numbers")
    cur.expect(orders and orders == list(range(len(orders))), "orders 0, 1, 2, ...")
    cur.i += 1
    return pb_order, len(orders)


def _pti_free_lines(cur: _Cursor, sec: dict, norders: int) -> None:
    """"Node N, zone Z, type T  counts" lines -> sec["free"][zone][mt]."""
    while cur.line:
        m = cur.expect(_PTI_FREE.match(cur.line),
                       "'Node N, zone NAME, type MIGRATETYPE ' and free counts")
        nd, zone, mt = int(m.group(1)), m.group(2), m.group(3)
        cur.expect(sec["node"] in (None, nd), f"node {sec['node']} throughout a section")
        sec["node"] = nd
        rest = cur.line[m.end():]
        toks = rest.split()
        cur.expect(rest.endswith(" ") and len(toks) == norders,
                   f"{norders} free counts each followed by a space")
        vals = []
        for t in toks:
            tm = cur.expect(_PTI_FREE_TOKEN.fullmatch(t), f"a free count, not {t!r}")
            vals.append(int(tm.group(1)))
        if zone not in sec["free"]:
            sec["zones"].append(zone)
            sec["free"][zone] = {}
            sec["zone_line"][zone] = cur.i + 1
        cur.expect(mt not in sec["free"][zone], f"one line per migratetype, {mt} repeated")
        sec["free"][zone][mt] = vals
        cur.i += 1


def _pti_count_table(cur: _Cursor, sec: dict, title: str) -> dict:
    """Blank line, "<title> names" header and one "Node N, zone Z  counts" line per zone."""
    cur.expect(cur.line == "", "an empty line")
    cur.i += 1
    head = "%-23s" % title
    cur.expect((cur.line or "").startswith(head), f"{title.strip()!r} header")
    names = cur.line[len(head):]
    cur.expect(names.endswith(" ") and names.split(), "migratetype names each followed by a space")
    names = names.split()
    if sec["mt_names"] is None:
        sec["mt_names"] = names
    cur.expect(names == sec["mt_names"], f"migratetypes {sec['mt_names']}")
    cur.i += 1
    counts = {}
    while cur.line and (m := _ZONE_HDR.match(cur.line)):
        cur.expect(int(m.group(1)) == sec["node"], f"node {sec['node']}")
        counts[m.group(2)] = _numbers(cur.line[m.end():], cur.source, cur.i + 1, cur.line,
                                      len(names), "block counts")
        cur.i += 1
    cur.expect(list(counts) == sec["zones"], f"block counts for zones {sec['zones']}")
    return counts


def _pti_node(cur: _Cursor) -> dict:
    """One node's section of /proc/pagetypeinfo (``pagetypeinfo_show``)."""
    first = cur.i + 1
    pb_order, norders = _pti_header(cur)
    sec = {"pageblock_order": pb_order, "node": None, "zones": [], "free": {},
           "zone_line": {}, "mt_names": None, "line": first}
    _pti_free_lines(cur, sec, norders)
    sec["block"] = _pti_count_table(cur, sec, "Number of blocks type ")
    sec["mixed"] = None
    nxt = cur.lines[cur.i + 1] if cur.i + 1 < len(cur.lines) else ""
    if cur.line == "" and nxt.startswith("Number of mixed blocks "):
        sec["mixed"] = _pti_count_table(cur, sec, "Number of mixed blocks ")
    cur.expect(cur.line is None or cur.line.startswith("Page block order: "),
               "end of file or the next node's 'Page block order: N'")
    for zone in sec["zones"]:
        got, want = list(sec["free"][zone]), sec["mt_names"]
        if got != want:
            k = next(k for k in range(len(want)) if k >= len(got) or got[k] != want[k])
            raise ProcFormatError(cur.source, sec["zone_line"][zone] + k,
                                  f"free list lines for {want} in zone {zone}, got {got}")
    return sec


def parse_pagetypeinfo(text: str, source: str = "<string>", node: int | None = None) -> dict:
    """Parse /proc/pagetypeinfo.

    Returns dict ``node, pageblock_order, mt_names, zone_names, free_count``
    (int64 ``[zone, mt, order]``; a capped ``">100000"`` reads as 100000),
    ``block_count`` (int64 ``[zone, mt]``) and ``mixed_count`` (same shape, or None).
    """
    cur = _Cursor(text, source)
    secs = [_pti_node(cur)]
    while cur.line is not None:
        secs.append(_pti_node(cur))
    if node is None:
        if len(secs) > 1:
            raise ProcFormatError(source, secs[1]["line"],
                                  "a single node in pagetypeinfo (pass node=)")
        sec = secs[0]
    else:
        found = [s for s in secs if s["node"] == node]
        if not found:
            raise ProcFormatError(source, 1, f"a section for node {node}")
        sec = found[0]
    zones, mts = sec["zones"], sec["mt_names"]
    nz, nmt = len(zones), len(mts)
    free = np.array([[sec["free"][z][mt] for mt in mts] for z in zones], dtype=np.int64)

    def table(counts):
        return np.array([counts[z] for z in zones], dtype=np.int64).reshape(nz, nmt)

    return {"node": sec["node"] if sec["node"] is not None else (node or 0),
            "pageblock_order": sec["pageblock_order"], "mt_names": list(mts),
            "zone_names": list(zones),
            "free_count": free.reshape(nz, nmt, -1) if nz else np.zeros((0, nmt, 0), np.int64),
            "block_count": table(sec["block"]),
            "mixed_count": None if sec["mixed"] is None else table(sec["mixed"])}


_INDEX_TOKEN = re.compile(r"(-?\d+)\.(-?\d+)")


def parse_index_file(text: str, source: str = "<string>", node: int | None = None):
    """Parse debugfs extfrag/{unusable_index,extfrag_index} -> ``(zone_names, index)``.

    ``index`` is int64 ``[zone, order]``, x1000 as the kernel computes it
    (``"-1.000"`` -> -1000, ``" 0.-500"`` -> -500).
    """
    rows = []
    norders = None
    for i, line in enumerate(_lines(text, source), 1):
        m = _ZONE_HDR.match(line)
        if not m:
            raise ProcFormatError(source, i, "'Node N, zone NAME ' followed by index values", line)
        rest = line[m.end():]
        if not rest.endswith(" "):
            raise ProcFormatError(source, i, "index values each followed by a space", line)
        vals = []
        for t in rest.split():
            tm = _INDEX_TOKEN.fullmatch(t)
            if tm is None:
                raise ProcFormatError(source, i, f"an index 'I.FFF', not {t!r}", line)
            q, r = int(tm.group(1)), int(tm.group(2))
            v = q * 1000 + r
            if _c_div_mod(v, 1000) != (q, r) or ("%03d" % r) != tm.group(2):
                raise ProcFormatError(source, i, f"an index as '%d.%03d' prints it, not {t!r}",
                                      line)
            vals.append(v)
        if norders is None:
            norders = len(vals)
        if not vals or len(vals) != norders:
            raise ProcFormatError(source, i, f"{norders or 'some'} index values, found {len(vals)}",
                                  line)
        rows.append((int(m.group(1)), i, m.group(2), vals))
    rows = _pick_node(rows, node, source, "the index file")
    table = np.array([r[3] for r in rows], dtype=np.int64).reshape(len(rows), norders or 0)
    return [r[2] for r in rows], table


_VMSTAT_LINE = re.compile(r"(\S+) (\d+)")


def parse_vmstat(text: str, source: str = "<string>") -> dict:
    """Parse /proc/vmstat -> ``{name: value}`` in file order."""
    out = {}
    for i, line in enumerate(_lines(text, source), 1):
        m = _VMSTAT_LINE.fullmatch(line)
        if not m:
            raise ProcFormatError(source, i, "'name value' (unsigned integer)", line)
        if m.group(1) in out:
            raise ProcFormatError(source, i, f"each counter once, {m.group(1)} repeated", line)
        out[m.group(1)] = int(m.group(2))
    return out


_MEMINFO_LINE = re.compile(r"([^\s:]+): +(\d+)( kB)?")


def parse_meminfo(text: str, source: str = "<string>") -> dict:
    """Parse /proc/meminfo -> ``{name: value}``; values in kB as printed (HugePages_* are counts)."""
    out = {}
    for i, line in enumerate(_lines(text, source), 1):
        m = _MEMINFO_LINE.fullmatch(line)
        if not m:
            raise ProcFormatError(source, i, "'Name:   value [kB]'", line)
        out[m.group(1)] = int(m.group(2))
    return out


_ZI_HDR = re.compile(r"Node (\d+), zone +(\S+)")
_ZI_STAT = re.compile(r"      (\S+) +(\d+)")
_ZI_WMARK = re.compile(r"        (\S+) +(\d+)")
_ZI_PROT = re.compile(r"        protection: \((-?\d+(?:, -?\d+)*)\)")
_ZI_CPU = re.compile(r"    cpu: (\d+)")
_ZI_PCP = re.compile(r"              (count|high|batch|high_min|high_max): +(-?\d+)")
#: pageset lines in order; high_min/high_max are printed by newer kernels (6.18)
_ZI_PCP_KEYS = ("count", "high", "batch", "high_min", "high_max")
_ZI_THRESH = re.compile(r"  vm stats threshold: (-?\d+)")
_ZI_TAIL = re.compile(r"  (node_unreclaimable|start_pfn): +(\d+)")


def _zoneinfo_zone_complete(z: dict, state: str) -> bool:
    """An unpopulated zone ends after protection, a populated one after start_pfn."""
    return (state == "prot" and not z["populated"]) or (state == "tail" and "start_pfn" in z)


def parse_zoneinfo(text: str, source: str = "<string>", node: int | None = None) -> dict:
    """Parse /proc/zoneinfo -> ``{zone_name: fields}`` for one node, in file order.

    Fields: ``node``, ``populated``, ``free``, the watermark block
    (``boost min low high promo spanned present managed cma``, as present),
    ``protection`` (list); for populated zones also ``stats`` (zone and NUMA vmstat
    items), ``pagesets`` (list of dicts ``cpu count high batch stat_threshold``),
    ``node_unreclaimable``, ``start_pfn``; ``node_stats`` on the zone that carries
    the "per-node stats" block.  :func:`render_zoneinfo` prints it back unchanged.
    """
    lines = _lines(text, source)
    zones = []  # (node, lineno, name, dict)
    z = None
    state = None
    for i, line in enumerate(lines, 1):
        def bad(what):
            return ProcFormatError(source, i, what, line)

        m = _ZI_HDR.fullmatch(line)
        if m:
            if z is not None and not _zoneinfo_zone_complete(z, state):
                raise bad("the rest of the previous zone before a new 'Node N, zone NAME'")
            z = {"node": int(m.group(1)), "populated": False}
            zones.append((z["node"], i, m.group(2), z))
            state = "hdr"
            continue
        if z is None:
            raise bad("'Node N, zone NAME'")
        if line == "  per-node stats":
            if state != "hdr":
                raise bad("'per-node stats' right after the zone header")
            z["node_stats"] = {}
            state = "node_stats"
        elif line.startswith("  pages free "):
            val = line[len("  pages free "):].strip()
            if state not in ("hdr", "node_stats") or not val.isdigit():
                raise bad("'  pages free     N' after the header or per-node stats")
            z["free"] = int(val)
            state = "wmark"
        elif (m := _ZI_PROT.fullmatch(line)):
            if state != "wmark":
                raise bad("'protection: (...)' after the watermark lines")
            z["protection"] = [int(v) for v in m.group(1).split(", ")]
            state = "prot"
        elif (m := _ZI_WMARK.fullmatch(line)) and state == "wmark":
            if m.group(1) not in ZONEINFO_WMARK_KEYS or m.group(1) in z:
                raise bad(f"one of {ZONEINFO_WMARK_KEYS}, once each")
            z[m.group(1)] = int(m.group(2))
        elif (m := _ZI_STAT.fullmatch(line)) and state in ("node_stats", "prot", "stats"):
            if state == "node_stats":
                d = z["node_stats"]
            else:
                d = z.setdefault("stats", {})
                z["populated"] = True
                state = "stats"
            if m.group(1) in d:
                raise bad(f"each vmstat item once, {m.group(1)} repeated")
            d[m.group(1)] = int(m.group(2))
        elif line == "  pagesets":
            if state not in ("prot", "stats"):
                raise bad("'  pagesets' after the zone's vmstat items")
            z["populated"] = True
            z["pagesets"] = []
            state = "pagesets"
        elif (m := _ZI_CPU.fullmatch(line)):
            if state not in ("pagesets", "pcp"):
                raise bad("'    cpu: N' inside pagesets")
            z["pagesets"].append({"cpu": int(m.group(1))})
            state = "pcp"
        elif (m := _ZI_PCP.fullmatch(line)):
            pcp = z["pagesets"][-1] if state == "pcp" else None
            want = _ZI_PCP_KEYS[len(pcp) - 1] if pcp and len(pcp) < 6 \
                and "stat_threshold" not in pcp else None
            if m.group(1) != want:
                raise bad(f"'{want}: N' of the current cpu" if want else "count/high/batch "
                          "after '    cpu: N'")
            pcp[want] = int(m.group(2))
        elif (m := _ZI_THRESH.fullmatch(line)):
            if state != "pcp" or len(z["pagesets"][-1]) not in (4, 6):
                raise bad("'  vm stats threshold: N' after a cpu's count/high/batch"
                          "[/high_min/high_max]")
            z["pagesets"][-1]["stat_threshold"] = int(m.group(1))
        elif (m := _ZI_TAIL.fullmatch(line)):
            key = m.group(1)
            if key == "node_unreclaimable" and state not in ("pagesets", "pcp"):
                raise bad("'  node_unreclaimable:  N' after pagesets")
            if key == "start_pfn" and "node_unreclaimable" not in z:
                raise bad("'  start_pfn:           N' after node_unreclaimable")
            if key in z:
                raise bad(f"{key} once")
            z[key] = int(m.group(2))
            state = "tail"
        else:
            raise bad({"hdr": "'  per-node stats' or '  pages free     N'",
                       "node_stats": "'      name value' per-node stat",
                       "wmark": "'        name value' watermark line or 'protection: (...)'",
                       "prot": "zone vmstat items or '  pagesets' (or a new zone)",
                       "stats": "'      name value' zone vmstat item or '  pagesets'",
                       "pagesets": "'    cpu: N'",
                       "pcp": "a pageset line",
                       "tail": "'  start_pfn: N' or a new zone"}[state])
    if z is not None and not _zoneinfo_zone_complete(z, state):
        raise ProcFormatError(source, len(lines), "a complete last zone", lines[-1])
    rows = _pick_node(zones, node, source, "zoneinfo")
    out = {}
    for _, lineno, name, d in rows:
        if name in out:
            raise ProcFormatError(source, lineno, f"zone {name} once per node")
        out[name] = d
    return out


def read_snapshot(path, node: int | None = None) -> dict:
    """Parse the files of a snapshot directory that exist.

    Keys (when the file is present): ``buddyinfo`` -> (zone_names, nr_free),
    ``pagetypeinfo``, ``zoneinfo``, ``vmstat``, ``meminfo``,
    ``unusable_index`` / ``extfrag_index`` -> (zone_names, index x1000).
    """
    parsers = {
        "buddyinfo": lambda t, s: parse_buddyinfo(t, s, node),
        "pagetypeinfo": lambda t, s: parse_pagetypeinfo(t, s, node),
        "zoneinfo": lambda t, s: parse_zoneinfo(t, s, node),
        "vmstat": parse_vmstat,
        "meminfo": parse_meminfo,
        "unusable_index": lambda t, s: parse_index_file(t, s, node),
        "extfrag_index": lambda t, s: parse_index_file(t, s, node),
    }
    out = {}
    for name, parse in parsers.items():
        fn = os.path.join(os.fspath(path), name)
        if os.path.exists(fn):
            with open(fn, encoding="ascii") as f:
                out[name] = parse(f.read(), fn)
    return out
