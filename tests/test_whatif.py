"""Tests of the what-if replay (spbsim.trace.whatif).

Synthetic traces are written in the oracle's tracefs text format (lines copied
from run1-mixed-s1 with other pfns) to tmp files.  The oracle run (found via
$SPBSIM_ORACLE or <repo>/../shared/oracle, else skipped) is replayed for its
first 200k lines in the default suite and wholly under ``@pytest.mark.slow``.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from spbsim.errors import SpbsimError
from spbsim.machine import Machine
from spbsim.mm.const import ZONE_NORMAL, pageblock_order
from spbsim.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from spbsim.trace import whatif as W
from spbsim.trace.ftrace import MM_PAGE_ALLOC, TraceFormatError, TraceReader
from spbsim.trace.whatif import (OP_ADOPT, OP_ALLOC, OP_FREE, OP_MIGRATED, OP_SPLIT,
                                    OP_UNPAIRED, OWNER_PREFILL, OWNER_TRACE, UF_PRETRACE,
                                    free_pages_blocks_ge, main, replay_whatif, request_stream)

REPO = Path(__file__).resolve().parent.parent
RUN = "run1-mixed-s1"


from oracle import oracle_root as _oracle_root  # noqa: E402


def _run_dir():
    root = _oracle_root()
    for d in (root / RUN, root):
        if (d / "trace.txt.xz").exists():
            return d
    return None


RUN_DIR = _run_dir()
needs_oracle = pytest.mark.skipif(RUN_DIR is None,
                                  reason=f"no oracle trace under {_oracle_root()} "
                                         f"(set SPBSIM_ORACLE)")

SMALL = dict(memory="1G", low_memory="512M", cpus=2, version="6.12")

# ---------------------------------------------------------------------------
# synthetic traces: real oracle lines with edited pfns
# ---------------------------------------------------------------------------

_ALLOC = ("            init-1       [{cpu:03d}] .....    {ts:.6f}: mm_page_alloc: "
          "page=00000000af3f5202 pfn={pfn:#x} order={order} migratetype={mt} "
          "gfp_flags={gfp}")
_ALLOC_FAILED = ("         anonhog-722     [000] .....    {ts:.6f}: mm_page_alloc: "
                 "page=0000000000000000 pfn=0x0 order=9 migratetype=1 "
                 "gfp_flags=GFP_TRANSHUGE_LIGHT|__GFP_NORETRY|__GFP_THISNODE")
_FREE = ("             cut-218     [{cpu:03d}] .....    {ts:.6f}: mm_page_free: "
         "page=000000004a2ad7d2 pfn={pfn:#x} order={order}")
_FREE_BATCHED = ("             cut-218     [{cpu:03d}] ...2.    {ts:.6f}: mm_page_free_batched: "
                 "page=000000004a2ad7d2 pfn={pfn:#x} order=0")
_KC_FREE = ("      kcompactd0-39      [001] .....    {ts:.6f}: mm_page_free: "
            "page=000000001d29e123 pfn={pfn:#x} order={order}")
_C_BEGIN = ("         anonhog-722     [000] .....    {ts:.6f}: mm_compaction_begin: "
            "zone_start=0x1000 migrate_pfn=0x1000 free_pfn=0xffe00 zone_end=0x100000, mode=sync")
_C_END = ("         anonhog-722     [000] .N...    {ts:.6f}: mm_compaction_end: "
          "zone_start=0x1000 migrate_pfn=0x17c00 free_pfn=0x1b800 zone_end=0x100000, "
          "mode=sync status=success")
_KC_ISOLATE = ("      kcompactd0-39      [001] .....    {ts:.6f}: mm_compaction_isolate_freepages: "
               "range=({a:#x} ~ {b:#x}) nr_scanned={n} nr_taken={taken}")
_KC_END = ("      kcompactd0-39      [001] .....    {ts:.6f}: mm_compaction_end: "
           "zone_start=0x1000 migrate_pfn=0x17c00 free_pfn=0x1b800 zone_end=0x100000, "
           "mode=sync status=complete")
_U_BEGIN = ("              sh-227     [001] .....    {ts:.6f}: mm_compaction_begin: "
            "zone_start=0x100000 migrate_pfn=0x100000 free_pfn=0x11fe00 zone_end=0x120000, "
            "mode=sync")
_U_END = ("              sh-227     [001] .....    {ts:.6f}: mm_compaction_end: "
          "zone_start=0x100000 migrate_pfn=0x11fe00 free_pfn=0x11fe00 zone_end=0x120000, "
          "mode=sync status=complete")
_U_ALLOC = ("              sh-227     [001] ..s1.    {ts:.6f}: mm_page_alloc: "
            "page=00000000af3f5202 pfn={pfn:#x} order={order} migratetype=0 gfp_flags=GFP_ATOMIC")
_U_FREE = ("              sh-227     [{cpu:03d}] .....    {ts:.6f}: mm_page_free: "
           "page=000000004a2ad7d2 pfn={pfn:#x} order={order}")
_TTCP = ("              sh-227     [001] .....    {ts:.6f}: mm_compaction_try_to_compact_pages: "
         "order=9 gfp_mask=GFP_TRANSHUGE priority=1")
_BARE = {"kce": _KC_END, "cb": _C_BEGIN, "ce": _C_END, "ucb": _U_BEGIN, "uce": _U_END,
         "ttcp": _TTCP}
_AH_FREE = ("         anonhog-722     [000] .....    {ts:.6f}: mm_page_free: "
            "page=000000004a2ad7d2 pfn={pfn:#x} order={order}")
_MARK = "           agent-219     [001] .....    {ts:.6f}: tracing_mark_write: {text}"
_DRAIN = ("         kswapd0-52      [000] d..3.    {ts:.6f}: mm_page_pcpu_drain: "
          "page=000000005de5eb40 pfn={pfn:#x} order={order} migratetype=1")
_ZONE_LOCKED = ("            init-182 [001] d..3.    {ts:.6f}: mm_page_alloc_zone_locked: "
                "page=000000008f37a059 pfn={pfn:#x} order=1 migratetype=0 percpu_refill=1")

_MT = {"GFP_KERNEL": 0, "GFP_HIGHUSER_MOVABLE": 1, "GFP_NOWAIT": 0,
       "GFP_TRANSHUGE_LIGHT|__GFP_NORETRY|__GFP_THISNODE": 1,
       "GFP_KERNEL|__GFP_RECLAIMABLE": 2}


def write_trace(path, events, t0=10.0):
    """events: ("a", pfn, order[, gfp[, cpu]]), ("f", pfn, order[, cpu]),
    ("fb", pfn), ("afail",), ("mark", text), ("zl", pfn), ("dr", pfn, order)
    an mm_page_pcpu_drain, ("t", seconds);
    compaction: ("kf", pfn, order) a kcompactd free, ("cb",) / ("ce",)
    mm_compaction_begin / end of task anonhog-722, ("af", pfn, order) a
    free by that task; ("ucb",) / ("uce",) a whole-zone sync compaction of
    Normal (0x100000) by task sh-227 begins / ends, ("ttcp",) that task's
    order-9 mm_compaction_try_to_compact_pages, ("ua", pfn, order) an
    allocation logged under that task, ("uf", pfn, order, cpu) a free."""
    lines = ["# tracer: nop", "#"]
    ts = t0
    for e in events:
        ts += 0.001
        k = e[0]
        if k == "a":
            gfp = e[3] if len(e) > 3 else "GFP_KERNEL"
            lines.append(_ALLOC.format(cpu=e[4] if len(e) > 4 else 0, ts=ts, pfn=e[1],
                                       order=e[2], mt=_MT.get(gfp, 0), gfp=gfp))
        elif k == "f":
            lines.append(_FREE.format(cpu=e[3] if len(e) > 3 else 1, ts=ts, pfn=e[1],
                                      order=e[2]))
        elif k == "fb":
            lines.append(_FREE_BATCHED.format(cpu=1, ts=ts, pfn=e[1]))
        elif k == "afail":
            lines.append(_ALLOC_FAILED.format(ts=ts))
        elif k == "mark":
            lines.append(_MARK.format(ts=ts, text=e[1]))
        elif k == "zl":
            lines.append(_ZONE_LOCKED.format(ts=ts, pfn=e[1]))
        elif k == "dr":         # a per-cpu list drains a page to the buddy (pfn, order)
            lines.append(_DRAIN.format(ts=ts, pfn=e[1], order=e[2]))
        elif k == "t":          # advance the clock
            ts += e[1]
        elif k == "kf":
            lines.append(_KC_FREE.format(ts=ts, pfn=e[1], order=e[2]))
        elif k == "af":
            lines.append(_AH_FREE.format(ts=ts, pfn=e[1], order=e[2]))
        elif k == "kiso":       # kcompactd isolates free pages: (a, b, nr_taken)
            lines.append(_KC_ISOLATE.format(ts=ts, a=e[1], b=e[2], n=e[2] - e[1], taken=e[3]))
        elif k == "ua":         # an allocation logged under task sh-227 (pfn, order)
            lines.append(_U_ALLOC.format(ts=ts, pfn=e[1], order=e[2]))
        elif k == "uf":         # a free logged under task sh-227 (pfn, order, cpu)
            lines.append(_U_FREE.format(ts=ts, pfn=e[1], order=e[2], cpu=e[3]))
        elif k in _BARE:        # compaction lines with only a time
            lines.append(_BARE[k].format(ts=ts))
        else:
            raise ValueError(k)
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def pairing(path, **kw):
    ops, counts = request_stream(path, **kw)
    return ops, counts


# ---------------------------------------------------------------------------
# pairing
# ---------------------------------------------------------------------------

def test_pairs_alloc_and_free(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x1000, 0), ("a", 0x2000, 2, "GFP_HIGHUSER_MOVABLE"), ("zl", 0x3000),
        ("f", 0x1000, 0), ("fb", 0x1000), ("f", 0x2000, 2)])
    ops, c = pairing(t)
    assert c["alloc_events"] == 2 and c["free_events"] == 2
    assert c["paired"] == 2 and c["unpaired"] == 0
    assert ops["kind"].tolist() == [OP_ALLOC, OP_ALLOC, OP_FREE, OP_FREE]
    a, b = ops["id"][:2]
    assert a != b
    assert ops["id"][2:].tolist() == [a, b]
    assert ops["order"].tolist() == [0, 2, 0, 2]
    assert ops["gfp"][0] == GFP_KERNEL and ops["gfp"][1] == GFP_HIGHUSER_MOVABLE
    assert ops["cpu"].tolist() == [0, 0, 1, 1]


def test_free_before_alloc_is_unpaired(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        ("f", 0x5000, 0), ("a", 0x5000, 0), ("f", 0x5000, 0)])
    ops, c = pairing(t)
    assert c["unpaired"] == 1 and c["paired"] == 1
    assert ops["kind"].tolist() == [OP_UNPAIRED, OP_ALLOC, OP_FREE]
    assert ops["aux"][0] == 0x5000


def test_most_recent_allocation_is_paired_and_ids_recycled(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x10, 0), ("f", 0x10, 0), ("a", 0x10, 0), ("a", 0x11, 0),
        ("f", 0x10, 0), ("f", 0x11, 0)])
    ops, c = pairing(t)
    assert c["paired"] == 3 and c["superseded"] == 0
    ids = ops["id"].tolist()
    assert ids[0] == ids[1] == ids[2]          # id recycled after its free
    assert ids[4] == ids[2] and ids[5] == ids[3]


def test_free_of_other_order_is_unpaired_covering(tmp_path):
    """An order-2 free over a live order-0 allocation: not paired, the
    allocation it covers is ended."""
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x3001, 0), ("f", 0x3000, 2), ("f", 0x3001, 0)])
    ops, c = pairing(t)
    assert c["paired"] == 0 and c["unpaired_covering"] == 1 and c["covered_ended"] == 1
    assert c["unpaired"] == 1            # the later order-0 free finds nothing live
    assert ops["kind"].tolist() == [OP_ALLOC, OP_FREE, OP_UNPAIRED]
    assert ops["id"][1] == ops["id"][0]


def test_larger_order_free_at_head_is_covering(tmp_path):
    t = write_trace(tmp_path / "t.txt", [("a", 0x3000, 0), ("f", 0x3000, 1)])
    _, c = pairing(t)
    assert c["paired"] == 0 and c["unpaired_covering"] == 1 and c["unpaired"] == 0


def test_split_then_free_pieces(tmp_path):
    """A THP freed page by page (split under reclaim): split once, then pair."""
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x7000, 9, "GFP_TRANSHUGE_LIGHT|__GFP_NORETRY|__GFP_THISNODE"),
        ("f", 0x7005, 0), ("f", 0x7000, 0), ("f", 0x7001, 0)])
    ops, c = pairing(t)
    assert c["splits"] == 1 and c["split_pieces"] == 512
    assert c["paired"] == 3 and c["paired_after_split"] == 1 and c["unpaired"] == 0
    assert (ops["kind"] == OP_SPLIT).sum() == 512
    parent = ops["id"][0]
    sp = ops[ops["kind"] == OP_SPLIT]
    assert (sp["aux"] == parent).all() and (sp["gfp"] == 9).all() and (sp["order"] == 0).all()
    assert sp["cpu"].tolist() == list(range(512))
    r = replay_whatif(t, SMALL, prefill=False, check=True)
    m = r["machine"]
    assert r["splits"]["done"] == 1 and r["frees"]["done"] == 3 and r["frees"]["skipped"] == 0
    assert m.mem.owner_pages[OWNER_TRACE] == 509


def test_split_to_intermediate_order(tmp_path):
    """An order-2 free inside an order-4 block splits it into order-2 pieces."""
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x100, 4), ("f", 0x104, 2), ("f", 0x100, 2), ("f", 0x108, 2), ("f", 0x10c, 2)])
    _, c = pairing(t)
    assert c["splits"] == 1 and c["split_pieces"] == 4 and c["paired"] == 4
    r = replay_whatif(t, SMALL, prefill=False, check=True)
    assert r["machine"].mem.owner_pages[OWNER_TRACE] == 0


def test_superseded_allocation(tmp_path):
    t = write_trace(tmp_path / "t.txt", [("a", 0x100, 0), ("a", 0x100, 0), ("f", 0x100, 0)])
    ops, c = pairing(t)
    assert c["superseded"] == 1 and c["paired"] == 1
    assert ops["kind"].tolist() == [OP_ALLOC, OP_FREE, OP_ALLOC, OP_FREE]
    r = replay_whatif(t, SMALL, prefill=False, check=True)
    assert r["machine"].mem.owner_pages[OWNER_TRACE] == 0


def test_failed_allocations_and_batched_frees_skipped(tmp_path):
    t = write_trace(tmp_path / "t.txt", [("afail",), ("fb", 0x100), ("a", 0x100, 0)])
    ops, c = pairing(t)
    assert c["alloc_events"] == 2 and c["alloc_failed_in_trace"] == 1
    assert c["free_events"] == 0
    assert ops["kind"].tolist() == [OP_ALLOC]


def test_malformed_line_strict_and_lenient(tmp_path):
    t = write_trace(tmp_path / "t.txt", [("a", 0x100, 0), ("f", 0x100, 0)])
    text = t.read_text().replace("order=0\n", "order=zz\n", 1)
    t.write_text(text)
    with pytest.raises(TraceFormatError):
        replay_whatif(t, SMALL, prefill=False)
    r = replay_whatif(t, SMALL, prefill=False, lenient=True)
    assert r["allocs"] == 1 and sum(r["trace"]["errors"].values()) == 1


def test_second_unpaired_free_is_not_pretrace(tmp_path):
    """A page freed twice without an allocation in between was reallocated
    by an untraced path: only its first free is pre-trace memory."""
    t = write_trace(tmp_path / "t.txt", [("f", 0x100, 0), ("f", 0x100, 0), ("a", 0x200, 1),
                                         ("f", 0x200, 1), ("f", 0x201, 0)])
    ops, c = pairing(t)
    assert c["unpaired"] == 3 and c["unpaired_pretrace"] == 1 and c["unpaired_untraced"] == 2
    un = ops[ops["kind"] == OP_UNPAIRED]
    assert (un["gfp"] & UF_PRETRACE).tolist() == [UF_PRETRACE, 0, 0]
    r = replay_whatif(t, SMALL, check=True)
    assert r["prefill"]["blocks"] == 1 and r["prefill"]["not_prefilled"] == 2


def test_migration_by_kcompactd(tmp_path):
    """kcompactd frees a traced block (migration source): the simulated block
    stays; the later free of the untraced target page frees it."""
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x100, 0, "GFP_HIGHUSER_MOVABLE"), ("a", 0x300, 0, "GFP_HIGHUSER_MOVABLE"),
        ("f", 0x500, 0), ("a", 0x500, 0), ("f", 0x500, 0),     # 0x500 touched
        ("kf", 0x100, 0), ("kf", 0x300, 0),
        ("mark", "oracle_snap_end seq=1 tag=x"),
        ("f", 0x500, 0), ("f", 0x700, 0)])
    ops, c = pairing(t)
    assert c["paired"] == 3 and c["migrated"] == 2
    assert c["migration_target_frees"] == 1 and c["unpaired_pretrace"] == 2
    k = ops["kind"].tolist()
    assert k.count(OP_MIGRATED) == 2
    tf = ops[(ops["kind"] == OP_FREE) & (ops["aux"] == 0x500)]
    assert len(tf) == 1 and tf["id"][0] == ops["id"][0]        # FIFO: the oldest migrated
    r = replay_whatif(t, SMALL, check=True)
    snap = r["snapshots"][0]
    m = r["machine"]
    assert r["replay"]["migrated_kept"] == 2
    assert m.mem.owner_pages[OWNER_TRACE] == 1                  # 0x300's data still lives
    assert r["frees"]["done"] == 2                              # 0x500's pair, 0x100 via target
    # with migrations="free" they are plain frees
    ops2, c2 = pairing(t, migrations="free")
    assert c2["migrated"] == 0 and (ops2["kind"] == OP_MIGRATED).sum() == 0
    r2 = replay_whatif(t, SMALL, migrations="free", check=True)
    assert r2["machine"].mem.owner_pages[OWNER_TRACE] == 0
    assert r2["checksum"] != r["checksum"]
    assert snap["tag"] == "x"


def test_migration_targets_follow_isolated_free_pages(tmp_path):
    """isolate_freepages_block() + compaction_alloc(): kcompactd isolates the
    free pages of a range in pfn order and migrates each order-0 source to the
    next one; the later free of a target frees the block whose data moved
    there (not the oldest migrated block)."""
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x100, 0, "GFP_HIGHUSER_MOVABLE"), ("a", 0x300, 0, "GFP_HIGHUSER_MOVABLE"),
        ("a", 0x800, 0), ("a", 0x802, 0), ("f", 0x800, 0), ("f", 0x802, 0),
        ("dr", 0x800, 0), ("dr", 0x802, 0),                                  # in the buddy
        ("a", 0x801, 0),                                                      # in use
        ("kiso", 0x800, 0x804, 2),
        ("kf", 0x100, 0), ("kf", 0x300, 0), ("kce",),
        ("f", 0x802, 0), ("f", 0x800, 0)])
    ops, c = pairing(t)
    assert c["migrated"] == 2 and c["isolated_free_pages"] == 2
    assert c["migration_targets_placed"] == 2 and c["migration_target_frees"] == 0
    frees = ops[ops["kind"] == OP_FREE]
    ids = {int(o["id"]) for o in ops[ops["kind"] == OP_ALLOC][:2]}
    id_100, id_300 = ops["id"][0], ops["id"][1]
    assert ids == {int(id_100), int(id_300)}
    # 0x100 moved to 0x800, 0x300 to 0x802: the free of 0x802 ends 0x300's block
    assert frees["id"][-2] == id_300 and frees["id"][-1] == id_100
    r = replay_whatif(t, SMALL, check=True)
    assert r["replay"]["migrated_kept"] == 2 and r["frees"]["done"] == 2 + 2


def _migrated_sources(tmp_path, events, targets, **kw):
    """kcompactd migrates three traced order-0 blocks (0x100, 0x200, 0x300)
    after ``events``; then the pages ``targets`` are freed one by one.
    Returns the source of each free that ended a migrated block, in order,
    and the pairing counters."""
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x100, 0, "GFP_HIGHUSER_MOVABLE"), ("a", 0x200, 0, "GFP_HIGHUSER_MOVABLE"),
        ("a", 0x300, 0, "GFP_HIGHUSER_MOVABLE"), *events,
        ("kf", 0x100, 0), ("kf", 0x200, 0), ("kf", 0x300, 0), ("kce",),
        *[("f", p, 0) for p in targets]])
    ops, c = pairing(t, **kw)
    src = {int(i): p for i, p in zip(ops["id"][:3], (0x100, 0x200, 0x300))}
    frees = ops[ops["kind"] == OP_FREE]
    return [src[int(i)] for i in frees["id"] if int(i) in src], c


def test_migration_targets_are_pages_in_the_buddy_not_on_a_per_cpu_list(tmp_path):
    """isolate_freepages_block() isolates PageBuddy pages only: 0x800, freed
    to a per-cpu list and not drained, is no migration target; the pages
    drained to the buddy are, and 0x804, drained and taken again by a
    refill (mm_page_alloc_zone_locked), is not (before: every freed page
    was a target)."""
    got, c = _migrated_sources(tmp_path, [
        ("a", 0x800, 0), ("a", 0x801, 0), ("a", 0x802, 0), ("a", 0x803, 0),
        ("f", 0x800, 0), ("f", 0x801, 0), ("f", 0x802, 0), ("f", 0x803, 0),
        ("dr", 0x801, 0), ("dr", 0x802, 0), ("dr", 0x803, 0),
        ("a", 0x804, 0), ("f", 0x804, 0), ("dr", 0x804, 0), ("zl", 0x804),
        ("kiso", 0x800, 0x806, 3)], [0x801, 0x802, 0x803])
    assert got == [0x100, 0x200, 0x300]
    assert c["migration_targets_placed"] == 3 and c["unpaired_untraced"] == 0


def test_migration_targets_take_the_lowest_order_chunk_first(tmp_path):
    """v6.12 (cc->freepages[order]): compaction_alloc() takes the head of the
    lowest-order non-empty list, so the order-0 chunk 0x803, isolated after
    the order-1 chunk 0x800-0x801, is used first, then that chunk in
    ascending order (before: pfn order).  v6.1: split_map_pages()
    list_add()s every isolated page to the head of cc->freepages, so the
    last isolated is used first."""
    ev = [("a", 0x800, 0), ("a", 0x801, 0), ("a", 0x802, 0), ("a", 0x803, 0),
          ("f", 0x800, 0), ("f", 0x801, 0), ("f", 0x803, 0),
          ("dr", 0x800, 0), ("dr", 0x801, 0), ("dr", 0x803, 0),
          ("kiso", 0x800, 0x804, 3)]
    got, _ = _migrated_sources(tmp_path, ev, [0x803, 0x800, 0x801])
    assert got == [0x100, 0x200, 0x300]
    got61, _ = _migrated_sources(tmp_path, ev, [0x803, 0x801, 0x800], version="6.1")
    assert got61 == [0x100, 0x200, 0x300]


def test_migration_in_direct_compaction_window(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        ("a", 0x100, 0, "GFP_HIGHUSER_MOVABLE"), ("a", 0x101, 0, "GFP_HIGHUSER_MOVABLE"),
        ("a", 0x102, 0, "GFP_HIGHUSER_MOVABLE"),
        ("af", 0x100, 0), ("cb",), ("af", 0x101, 0), ("f", 0x102, 0), ("ce",)])
    _, c = pairing(t)
    assert c["paired"] == 3 and c["migrated"] == 1       # only the task's free inside


def test_migrated_pretrace_page_is_adopted(tmp_path):
    """kcompactd migrates a page in use before tracing: it is pre-filled and
    stays allocated until the free of its target."""
    t = write_trace(tmp_path / "t.txt", [
        ("kf", 0x900, 0), ("kf", 0x901, 0),        # pre-trace pages migrated
        ("f", 0x901, 0),                           # a target page (touched) freed
        ("mark", "oracle_snap_end seq=1 tag=x")])
    ops, c = pairing(t)
    assert c["migrated_pretrace"] == 2 and c["migration_target_frees"] == 1
    assert (ops["kind"] == OP_ADOPT).sum() == 2
    r = replay_whatif(t, SMALL, check=True)
    m = r["machine"]
    assert r["prefill"]["blocks"] == 2 and r["replay"]["adopted"] == 2
    assert m.mem.owner_pages[OWNER_PREFILL] == 1               # one migrated block lives on
    assert r["frees"]["done"] == 1
    r0 = replay_whatif(t, SMALL, prefill=False, check=True)
    assert r0["replay"]["adopt_skipped"] == 2 and r0["frees"]["skipped"] == 1


def test_fill_to_start_snapshot(tmp_path):
    """With a start snapshot, never-freed pages make the simulated free memory
    equal the snapshot's at its end marker."""
    from spbsim.trace.kpageflags import KPF_LRU, KPF_SLAB
    flags = np.zeros(0x40000, np.uint64)
    flags[0x1000:0x1800] = 1 << KPF_SLAB
    flags[0x2000:0x4000] = 1 << KPF_LRU
    d = _snapshots_dir(tmp_path, flags)
    m0 = Machine(**SMALL)
    real = {}
    lines = []
    for i, name in enumerate(m0.zone_names()):
        z = m0.populated_zones()[i]
        free = int((m0.mem.nr_free[z] << np.arange(11)).sum()) // 2
        real[name] = free
        row = [0] * 11
        row[10], rest = divmod(free, 1024)
        for o in range(9, -1, -1):
            row[o], rest = divmod(rest, 1 << o)
        lines.append(f"Node 0, zone {name:>8} " + "".join(f"{v:>7}" for v in row) + " \n")
    (d / "0001-start" / "buddyinfo").write_text("".join(lines))
    t = write_trace(tmp_path / "trace.txt", [
        ("a", 0x100, 0), ("mark", "oracle_snap_end seq=1 tag=start"), ("f", 0x100, 0)])
    r = replay_whatif(t, SMALL, check=True, start="prefill")
    f = r["fill"]
    assert f["at"].startswith("start marker")
    snap = r["snapshots"][0]
    for name, want in real.items():
        z = snap["zones"][name]
        assert abs(z["free_pages"] + z["pcp_pages"] - want) <= 1, (name, z, want)
        assert f["zones"][name]["pages"] > 0
    assert r["machine"].mem.owner_pages[W.OWNER_FILL] == sum(
        v["pages"] for v in f["zones"].values())
    # DMA32 mixes LRU, slab and other pages; Normal lies beyond the dump: kernel
    gf = f["zones"]["DMA32"]["by_gfp"]
    assert len(gf) == 3 and all("GFP_DMA32" in g for g in gf)
    assert gf["GFP_HIGHUSER_MOVABLE|GFP_DMA32"] > gf["GFP_KERNEL|GFP_DMA32|__GFP_RECLAIMABLE"]
    assert set(f["zones"]["Normal"]["by_gfp"]) == {"GFP_KERNEL"}
    assert replay_whatif(t, SMALL, fill=None, start="prefill")["fill"]["at"] is None
    with pytest.raises(SpbsimError):
        replay_whatif(t, SMALL, fill="bogus")


def test_fill_mix_ignores_pages_the_simulated_zone_lacks(tmp_path):
    """Real pages in a simulated hole (memory a deferred-init kernel had not
    initialised: kpageflags 0, i.e. 'other') do not make the fill GFP_KERNEL."""
    from spbsim.trace.kpageflags import KPF_LRU
    kw = dict(SMALL, holes=[(str((4 << 30) + (256 << 20)), "256M")])
    flags = np.zeros(0x120000, np.uint64)
    flags[0x100000:0x110000] = 1 << KPF_LRU        # Normal: movable, then the hole: 0
    d = _snapshots_dir(tmp_path, flags)
    m0 = Machine(**kw)
    lines = []
    for i, name in enumerate(m0.zone_names()):
        z = m0.populated_zones()[i]
        row = (m0.mem.nr_free[z] // 2).tolist()
        lines.append(f"Node 0, zone {name:>8} " + "".join(f"{v:>7}" for v in row) + " \n")
    (d / "0001-start" / "buddyinfo").write_text("".join(lines))
    t = write_trace(tmp_path / "trace.txt", [
        ("a", 0x100, 0), ("mark", "oracle_snap_end seq=1 tag=start"), ("f", 0x100, 0)])
    r = replay_whatif(t, kw, check=True, start="prefill")
    assert set(r["fill"]["zones"]["Normal"]["by_gfp"]) == {"GFP_HIGHUSER_MOVABLE"}


# ---------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------

def test_replay_counts_and_state(tmp_path):
    ev = []
    for i in range(200):
        ev.append(("a", 0x10000 + 8 * i, i % 4, "GFP_HIGHUSER_MOVABLE" if i % 2 else "GFP_KERNEL",
                   i % 2))
    for i in range(0, 200, 2):
        ev.append(("f", 0x10000 + 8 * i, i % 4))
    t = write_trace(tmp_path / "t.txt", ev)
    r = replay_whatif(t, SMALL, prefill=False, check=True)
    assert r["allocs"] == 200 and r["alloc_ok"] == 200
    assert r["sim_failures_by_order"] == [0] * 11
    assert r["frees"]["paired"] == 100 and r["frees"]["done"] == 100
    m = r["machine"]
    pages = sum(1 << (i % 4) for i in range(1, 200, 2))
    assert m.mem.owner_pages[OWNER_TRACE] == pages
    # the id -> pfn table: every live id points at an allocated head it owns
    live = np.flatnonzero(m.mem.obj_pfn >= 0)
    assert len(live) == 100
    assert (m.mem.pg_obj[m.mem.obj_pfn[live]] == live).all()
    assert r["passes"] == 1 and r["machine"].mem.obj_pfn.size >= 100


def test_replay_without_start_snapshot_counts_the_streams_frees_as_reclaim(tmp_path):
    """The stream holds the kernel's reclaim in every what-if replay, also
    one without a start snapshot (pre-fill, or none): a direct reclaim
    counts the stream's frees as progress, so the failed retry drains every
    cpu's lists and the request is served (spbsim.mm.vmscan,
    ``reclaim_external``).  Before, only the start-state replay did; this
    one reclaimed from the model's empty LRU lists, made no progress and
    failed the request with an OOM kill (run1 from its first line: 2,407)."""
    from spbsim.mm import craft
    from spbsim.mm.state import PCP_COUNT
    m = Machine(**SMALL, reclaim=True, compaction=False, early_unmovable=0)
    pfns = craft.exhaust(m, gfp=GFP_KERNEL, cpu=0)
    for p in pfns[-100:]:
        m.free(int(p), cpu=1)                   # parked on cpu 1's lists
    assert int(m.mem.pcp[:, 1, PCP_COUNT].sum()) == 100
    oom = m.vmstat_counters()["oom_kill"]
    t = write_trace(tmp_path / "t.txt", [("a", 0x10000, 0, "GFP_KERNEL", 0)])
    r = replay_whatif(t, m, prefill=False, check=True)
    assert r["sim_failures_by_order"] == [0] * 11 and r["alloc_ok"] == 1
    assert m.vmstat_counters()["oom_kill"] == oom
    assert int(m.mem.pcp[:, 1, PCP_COUNT].sum()) == 0


def test_given_machine_and_bad_pfn(tmp_path):
    """A pfn outside the machine's zones stops the replay naming file, line and
    field; with pfn_ranges=None it is only counted."""
    t = write_trace(tmp_path / "t.txt", [("a", 0x100, 0), ("a", 1 << 40, 0), ("f", 0x100, 0)])
    with pytest.raises(TraceFormatError, match=r"t\.txt:4: mm_page_alloc: field 'pfn': "
                                               r"pfn 0x10000000000 order 0 lies outside"):
        replay_whatif(t, Machine(**SMALL), prefill=False)
    m = Machine(**SMALL)
    r = replay_whatif(t, m, prefill=False, check=True, pfn_ranges=None)
    assert r["machine"] is m
    assert r["allocs"] == 1 and r["pairing"]["bad_events"] == 1


def test_order_above_max_page_order_is_refused(tmp_path):
    t = write_trace(tmp_path / "t.txt", [("a", 0x100, 0), ("f", 0x100, 0), ("a", 0x800, 11)])
    for ranges in ("machine", None):
        with pytest.raises(TraceFormatError, match=r"t\.txt:5: mm_page_alloc: field 'order': "
                                                   r"order 11 is above MAX_PAGE_ORDER 10"):
            replay_whatif(t, SMALL, prefill=False, pfn_ranges=ranges)


def test_failed_request_above_max_page_order_is_refused(tmp_path):
    """__alloc_pages() returns before its tracepoint for an order above
    MAX_PAGE_ORDER, so a failed mm_page_alloc line (page=0) of order 12 is
    bad input too: refused naming file, line and field."""
    t = write_trace(tmp_path / "t.txt", [("a", 0x100, 0), ("afail",), ("f", 0x100, 0)])
    t.write_text(t.read_text().replace("pfn=0x0 order=9", "pfn=0x0 order=12"))
    for ranges in ("machine", None):
        with pytest.raises(TraceFormatError, match=r"t\.txt:4: mm_page_alloc: field 'order': "
                                                   r"order 12 is above MAX_PAGE_ORDER 10"):
            replay_whatif(t, SMALL, prefill=False, pfn_ranges=ranges)


def test_free_of_failed_allocation_is_skipped(tmp_path):
    """More order-10 requests than a 1 GiB machine has blocks: the simulator
    fails some; their frees are skipped and counted."""
    n = 300
    ev = [("a", (0x10 + i) << 10, 10, "GFP_NOWAIT") for i in range(n)]
    ev += [("f", (0x10 + i) << 10, 10) for i in range(n)]
    t = write_trace(tmp_path / "t.txt", ev)
    # the traced blocks would not fit a 1 GiB machine: unchecked pfns
    r = replay_whatif(t, SMALL, prefill=False, check=True, pfn_ranges=None)
    fails = r["sim_failures_by_order"][10]
    assert fails > 0 and r["alloc_ok"] == n - fails
    assert r["frees"]["skipped"] == fails and r["frees"]["done"] == n - fails
    assert r["machine"].mem.owner_pages[OWNER_TRACE] == 0


def test_ids_follow_migration(tmp_path):
    """Compaction migrates movable blocks; frees still find them (obj_pfn)."""
    ev = [("a", 0x20000 + i, 0, "GFP_HIGHUSER_MOVABLE") for i in range(20000)]
    t = write_trace(tmp_path / "a.txt", ev + [("f", 0x20000 + i, 0) for i in range(0, 20000, 2)])
    stream = W._Stream(t, lenient=False, progress=False, max_lines=None, snapshot_every_s=None)
    ops = np.concatenate([c.ops for c in stream.chunks()])
    m = W._make_machine(SMALL, stream.pairer.ids_used)
    res = np.zeros(len(W.RES_NAMES), np.int64)
    fb = np.zeros(11, np.int64)
    W._replay_ops(m.mem, ops["kind"], ops["order"], ops["gfp"], ops["cpu"], ops["id"],
                  ops["aux"], ops["ts"], 0, len(ops), 0, 0, OWNER_TRACE, res, fb,
                  np.zeros((0, 3), np.int64), False)
    before = m.mem.obj_pfn.copy()
    m.compact_memory()
    moved = int(((before >= 0) & (m.mem.obj_pfn != before)).sum())
    assert m.vmstat_counters()["pgmigrate_success"] > 0 and moved > 0
    m.check()
    rest = np.zeros(10000, W.OP_DTYPE)
    rest["kind"] = OP_FREE
    rest["id"] = ops["id"][1:20000:2]
    W._replay_ops(m.mem, rest["kind"], rest["order"], rest["gfp"], rest["cpu"], rest["id"],
                  rest["aux"], rest["ts"], 0, len(rest), 0, 0, OWNER_TRACE, res, fb,
                  np.zeros((0, 3), np.int64), False)
    assert res[W._R["frees_skipped"]] == 0
    assert m.mem.owner_pages[OWNER_TRACE] == 0
    m.check()


def test_prefill(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        ("f", 0x9000, 3), ("a", 0x100, 0), ("f", 0x8000, 0), ("f", 0x100, 0)])
    r = replay_whatif(t, SMALL, prefill=True, check=True)
    assert r["prefill"]["blocks"] == 2 and r["prefill"]["pages"] == 9
    assert r["prefill"]["mode"].startswith("movable")        # no snapshots: auto -> movable
    assert r["frees"]["prefill_done"] == 2 and r["frees"]["unpaired"] == 2
    assert r["machine"].mem.owner_pages[OWNER_PREFILL] == 0
    r0 = replay_whatif(t, SMALL, prefill=False, check=True)
    assert r0["prefill"]["blocks"] == 0 and r0["frees"]["prefill_done"] == 0
    assert r0["frees"]["unpaired"] == 2
    assert r0["checksum"] != r["checksum"]
    with pytest.raises(SpbsimError):
        replay_whatif(t, SMALL, prefill="kpageflags")
    with pytest.raises(SpbsimError):
        replay_whatif(t, SMALL, prefill="bogus")


def test_prefill_occupies_memory_until_its_free(tmp_path):
    t = write_trace(tmp_path / "t.txt", [
        ("mark", "oracle_snap_end seq=1 tag=a"), ("f", 0x9000, 3),
        ("mark", "oracle_snap_end seq=2 tag=b")])
    r = replay_whatif(t, SMALL, prefill=True, check=True)
    a, b = r["snapshots"]
    fa = sum(z["free_pages"] + z["pcp_pages"] for z in a["zones"].values())
    fb = sum(z["free_pages"] + z["pcp_pages"] for z in b["zones"].values())
    assert fb - fa == 8


def _snapshots_dir(tmp_path, flags):
    """A snapshots dir with a 'start' snapshot holding kpageflags."""
    d = tmp_path / "snapshots"
    (d / "0001-start").mkdir(parents=True)
    (d / "index.tsv").write_text("seq\ttag\tmono_ns_first_file\tdir\tfiles\n"
                                 "1\tstart\t10000000000\t0001-start\tkpageflags\n")
    np.asarray(flags, "<u8").tofile(d / "0001-start" / "kpageflags.bin")
    return d


def test_prefill_kpageflags(tmp_path):
    from spbsim.trace.kpageflags import KPF_BUDDY, KPF_LRU, KPF_SLAB
    flags = np.zeros(0x10000, np.uint64)
    flags[0x100] = 1 << KPF_LRU        # movable
    flags[0x200] = 1 << KPF_SLAB       # slab
    flags[0x300] = 0                   # kernel page without telling bits
    flags[0x400] = 1 << KPF_BUDDY      # free at start, freed before the start marker
    flags[0x500] = 1 << KPF_BUDDY      # free at start, freed after it: untraced allocation
    _snapshots_dir(tmp_path, flags)
    t = write_trace(tmp_path / "trace.txt", [
        ("f", 0x400, 0), ("mark", "oracle_snap_end seq=1 tag=start"),
        ("f", 0x100, 0), ("f", 0x200, 0), ("f", 0x300, 0), ("f", 0x500, 0)])
    r = replay_whatif(t, SMALL, prefill=True, check=True, start="prefill")
    p = r["prefill"]
    assert p["mode"].startswith("kpageflags")
    assert p["blocks"] == 4 and p["not_prefilled"] == 1
    assert p["by_gfp"] == {"GFP_HIGHUSER_MOVABLE": 2, "GFP_KERNEL": 1,
                           "GFP_KERNEL|__GFP_RECLAIMABLE": 1}
    assert r["frees"]["prefill_done"] == 4 and r["frees"]["prefill_skipped"] == 0
    assert r["frees"]["unpaired_pretrace"] == 4 and r["frees"]["unpaired_untraced"] == 1
    assert r["fill"]["at"] is None          # no buddyinfo in the start snapshot
    assert r["checksum"] != replay_whatif(t, SMALL, prefill="movable",
                                          start="prefill")["checksum"]
    assert replay_whatif(t, SMALL, prefill="kpageflags",
                         start="prefill")["checksum"] == r["checksum"]


def test_two_passes_without_cache(tmp_path):
    ev = [("f", 0x9000 + 8 * i, 3) for i in range(10)]
    ev += [("a", 0x100 + i, 0) for i in range(100)] + [("mark", "oracle_snap_end seq=3 tag=x")]
    ev += [("f", 0x100 + i, 0) for i in range(50)]
    t = write_trace(tmp_path / "t.txt", ev)
    a = replay_whatif(t, SMALL)
    b = replay_whatif(t, SMALL, cache_bytes=0)
    assert a["passes"] == 1 and b["passes"] == 2
    assert a["checksum"] == b["checksum"]
    assert a["machine"].checksum() == b["machine"].checksum()
    assert [s["buddyinfo"] for s in a["snapshots"]] == [s["buddyinfo"] for s in b["snapshots"]]


def test_checksum_same_requests_across_versions(tmp_path):
    ev = [("a", 0x100 + 4 * i, i % 3, "GFP_HIGHUSER_MOVABLE") for i in range(500)]
    ev += [("f", 0x100 + 4 * i, i % 3) for i in range(0, 500, 3)] + [("f", 0x10000, 1)]
    t = write_trace(tmp_path / "t.txt", ev)
    r612 = replay_whatif(t, dict(SMALL, version="6.12"))
    rrec = replay_whatif(t, dict(SMALL, version="recent"))
    rdef = replay_whatif(t, dict(SMALL, version="recent", defrag_mode=True))
    assert r612["checksum"] == rrec["checksum"] == rdef["checksum"]
    t2 = write_trace(tmp_path / "t2.txt", ev[:-1] + [("f", 0x10000, 2)])
    assert replay_whatif(t2, SMALL)["checksum"] != r612["checksum"]


def test_snapshots_at_markers_and_periodic(tmp_path):
    ev = [("a", 0x100 + i, 0) for i in range(10)]
    ev += [("mark", "oracle_snap_begin seq=7 tag=periodic-0001"),
           ("mark", "oracle_snap_end seq=7 tag=periodic-0001")]
    ev += [("t", 2.0)] + [("f", 0x100 + i, 0) for i in range(10)]
    ev += [("t", 1.0), ("a", 0x5000, 0)]        # ticks at 11 s, 12 s (before the frees), 13 s
    t = write_trace(tmp_path / "t.txt", ev)
    r = replay_whatif(t, SMALL, prefill=False, snapshot_every_s=1.0)
    marks = [s for s in r["snapshots"] if s["seq"] is not None]
    ticks = [s for s in r["snapshots"] if s["seq"] is None]
    assert [(s["seq"], s["tag"]) for s in marks] == [(7, "periodic-0001")]
    assert [s["tag"] for s in ticks] == ["t=11s", "t=12s", "t=13s"]
    assert marks[0]["buddyinfo"].startswith("Node 0, zone")
    z = marks[0]["zones"]
    assert set(z) == set(r["machine"].zone_names())
    assert {"free_pages", "blocks_ge9", "pcp_pages"} <= set(z["Normal"])
    # snapshot after 10 allocs, the last tick after their frees
    fm = sum(v["free_pages"] + v["pcp_pages"] for v in z.values())
    fe = sum(v["free_pages"] + v["pcp_pages"] for v in ticks[-1]["zones"].values())
    assert fe - fm == 10


def test_daemons_plumbing(tmp_path):
    ev = [("a", 0x100 + i, 0, "GFP_HIGHUSER_MOVABLE") for i in range(100)] + [("t", 2.0)]
    ev += [("f", 0x100 + i, 0) for i in range(100)]
    t = write_trace(tmp_path / "t.txt", ev)
    r = replay_whatif(t, SMALL, daemons_every_s=0.5, snapshot_every_s=1.0, check=True)
    assert r["frees"]["done"] == 100
    assert all(s["tag"].startswith("t=") for s in r["snapshots"])


def _scattered(n=32768, base=0x104000):
    """n order-0 movable allocations on cpu 0, then every other one freed:
    the simulator's blocks are left half used (more holes than the per-cpu
    lists hold)."""
    ev = [("a", base + i, 0, "GFP_HIGHUSER_MOVABLE", 0) for i in range(n)]
    return ev + [("f", base + i, 0, 0) for i in range(0, n, 2)]


def test_user_compaction_is_replayed_as_a_request(tmp_path):
    """A write to /proc/sys/vm/compact_memory (compact_node(): one
    whole-zone sync compaction per zone, in the writer's task) is the
    workload's request, not a kernel decision: the replay has the simulator
    compact that zone itself at that point.  Before, nothing happened, and
    the simulator ended with the scattered blocks the kernel had compacted."""
    t = write_trace(tmp_path / "t.txt", _scattered() + [
        ("ucb",), ("uce",), ("mark", "oracle_snap_end seq=1 tag=x")])
    on = replay_whatif(t, SMALL, prefill=False, check=True)
    off = replay_whatif(t, SMALL, prefill=False, check=True, user_compactions=False)
    assert on["user_compactions"] == {"zones": 1, "unmatched": 0, "cut_short": 1,
                                      "direct_traced": False}
    assert off["user_compactions"] is None
    assert on["checksum"] == off["checksum"]                   # the same requests
    assert off["vmstat"]["pgmigrate_success"] == 0
    assert on["vmstat"]["pgmigrate_success"] > 0
    # the migrated sources sit on the compacting cpu's lists until drained;
    # then the compacted zone has fewer holes and more free 2 MB blocks
    holes, ge9 = [], []
    for r in (on, off):
        r["machine"].drain_pcp()
        nr_free = r["machine"].mem.nr_free[ZONE_NORMAL]
        holes.append(int(nr_free[0]))
        ge9.append(sum(int(nr_free[o]) << (o - pageblock_order)
                       for o in range(pageblock_order, len(nr_free))))
    assert holes[0] < holes[1] and ge9[0] > ge9[1]


def test_user_compaction_before_the_start_snapshot_is_not_replayed(tmp_path):
    """A compact_memory write that began before the start snapshot's marker
    is in the start state already (kpageflags is read after it): the replay
    from that snapshot does not compact the zone again.  The same write
    after the marker is replayed."""
    from spbsim.trace.kpageflags import KPF_BUDDY, KPF_LRU
    nr = Machine(**SMALL).geometry.nr_pfns
    flags = np.full(nr, 1 << KPF_BUDDY, np.uint64)
    flags[0x20000:0x100000] = 0                     # the hole below 4 GiB
    # every other page in use: holes, at even pfns (the free scanner's
    # stride, doubled over the free zone above, samples those)
    flags[0x104000:0x10c000] = 1 << KPF_LRU
    flags[0x104000:0x10c000:2] = 1 << KPF_BUDDY
    compaction = [("ucb",), ("uce",)]
    got = []
    for k, before in enumerate((True, False)):
        d = tmp_path / f"r{k}"
        d.mkdir()
        _snapshots_dir(d, flags)
        t = write_trace(d / "trace.txt", (compaction if before else [])
                        + [("mark", "oracle_snap_end seq=1 tag=start")]
                        + ([] if before else compaction)
                        + [("mark", "oracle_snap_end seq=2 tag=end")])
        r = replay_whatif(t, SMALL, check=True, start="snapshot")
        got.append((r["user_compactions"]["zones"], r["vmstat"]["pgmigrate_success"] > 0))
    assert got == [(0, False), (1, True)]


def test_a_kernel_failure_before_the_start_marker_is_not_logged(tmp_path):
    """Replayed from the start snapshot, the failure log keeps the kernel's
    failed requests after the start marker only, by trace line: one in the
    same microsecond as the marker but before it is in the start state's
    past.  (From the trace's beginning both sides count the whole stream.)"""
    import re
    from spbsim.trace.kpageflags import KPF_BUDDY
    nr = Machine(**SMALL).geometry.nr_pfns
    flags = np.full(nr, 1 << KPF_BUDDY, np.uint64)
    flags[0x20000:0x100000] = 0                     # the hole below 4 GiB
    _snapshots_dir(tmp_path, flags)
    t = write_trace(tmp_path / "trace.txt", [("afail",), ("mark", "oracle_snap_end seq=1 tag=start"),
                                             ("afail",), ("mark", "oracle_snap_end seq=2 tag=end")])
    lines = t.read_text().splitlines()
    ts = re.compile(r"\d+\.\d{6}:")
    mark = next(x for x in lines if "seq=1 tag=start" in x)
    k = next(j for j, x in enumerate(lines) if "page=0000000000000000" in x)
    lines[k] = ts.sub(ts.search(mark).group(0), lines[k])
    t.write_text("\n".join(lines) + "\n")
    r = replay_whatif(t, SMALL, start="snapshot")
    log = r["failure_log"]
    assert [o for _t, o, _c in log["kernel"]] == [9] and log["sim"] == []
    assert log["kernel"][0][0] > float(ts.search(mark).group(0)[:-1])


def test_direct_compaction_begin_is_no_user_request(tmp_path):
    """The same begin after the task's mm_compaction_try_to_compact_pages is
    a direct compaction (a kernel decision the simulator makes itself, or
    not): no zone is compacted for it, even after an allocation of another
    order logged under the task (an interrupt's); the request's own
    allocation ends the direct compaction, and a whole-zone begin after it
    is a request again."""
    t = write_trace(tmp_path / "t.txt", _scattered() + [
        ("ttcp",), ("ua", 0x110000, 0), ("ucb",), ("uce",),
        ("mark", "oracle_snap_end seq=1 tag=x")])
    r = replay_whatif(t, SMALL, prefill=False, check=True)
    assert r["user_compactions"] == {"zones": 0, "unmatched": 0, "cut_short": 0,
                                     "direct_traced": True}
    assert r["vmstat"]["pgmigrate_success"] == 0
    t2 = write_trace(tmp_path / "t2.txt", _scattered() + [
        ("ttcp",), ("ua", 0x110000, 9), ("ucb",), ("uce",),
        ("mark", "oracle_snap_end seq=1 tag=x")])
    r2 = replay_whatif(t2, SMALL, prefill=False, check=True)
    assert r2["user_compactions"] == {"zones": 1, "unmatched": 0, "cut_short": 1,
                                      "direct_traced": True}


def test_free_pages_blocks_ge():
    nr = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3]])
    pages, blocks = free_pages_blocks_ge(nr)
    assert pages.tolist() == [1 + 2 * 512 + 3 * 1024] and blocks.tolist() == [2 + 6]


def test_main_prints_table(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    snaps = run / "snapshots"
    (snaps / "0002-periodic-0001").mkdir(parents=True)
    (snaps / "index.tsv").write_text("seq\ttag\tmono_ns_first_file\tdir\tfiles\n"
                                     "2\tperiodic-0001\t1\t0002-periodic-0001\tbuddyinfo\n")
    rows = {"DMA": "0 0 0 0 0 0 1 1 0 1 3", "DMA32": "32 11 6 6 1 3 2 0 2 0 56",
            "Normal": "2 1 4 2 2 2 1 2 2 2 11"}
    (snaps / "0002-periodic-0001" / "buddyinfo").write_text("".join(
        f"Node 0, zone {z:>8} " + "".join(f"{int(v):>7}" for v in c.split()) + " \n"
        for z, c in rows.items()))
    t = write_trace(run / "trace.txt", [("a", 0x100, 0),
                                        ("mark", "oracle_snap_end seq=2 tag=periodic-0001"),
                                        ("f", 0x100, 0)])
    out_json = tmp_path / "r.json"
    assert main([str(t), "--memory", "1G", "--low-memory", "512M", "--cpus", "2",
                 "--kernel-version", "recent", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "periodic-0001" in out and "version=recent" in out
    assert "/3776" in out.split("periodic-0001")[1].split("|")[1]      # real DMA free pages
    data = json.loads(out_json.read_text())
    assert data["allocs"] == 1 and "machine" not in data
    assert main([str(t), "--kernel-version", "5.0"]) == 1


# ---------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------

ORACLE_MACHINE = dict(memory="1536M", low_memory="512M", cpus=2, version="6.12")


@needs_oracle
def test_oracle_first_200k_lines():
    trace = RUN_DIR / "trace.txt.xz"
    n = 200_000
    ok_allocs = 0
    for b in TraceReader(trace, max_lines=n, keep_other=False).batches():
        ev = b.events
        ok_allocs += int(((ev["kind"] == MM_PAGE_ALLOC) & ~ev["failed"]).sum())
    r = replay_whatif(trace, ORACLE_MACHINE, max_lines=n, check=True, start="prefill")
    assert r["trace"]["lines"] == n
    assert r["allocs"] == ok_allocs > 50_000
    assert r["alloc_ok"] + sum(r["sim_failures_by_order"]) == r["allocs"]
    r["machine"].check()
    assert [s["tag"] for s in r["snapshots"]][:1] == ["start"]
    rr = replay_whatif(trace, dict(ORACLE_MACHINE, version="recent"), max_lines=n,
                       start="prefill")
    assert rr["checksum"] == r["checksum"]
    assert rr["allocs"] == r["allocs"]
    rr["machine"].check()


@needs_oracle
@pytest.mark.slow
def test_oracle_whole_trace():
    trace = RUN_DIR / "trace.txt.xz"
    manifest = json.loads((RUN_DIR / "manifest.json").read_text())
    counts = manifest["trace"]["event_counts"]
    r = replay_whatif(trace, ORACLE_MACHINE, check=True, start="prefill")
    p = r["pairing"]
    assert p["alloc_events"] == counts["mm_page_alloc"]
    assert r["allocs"] == counts["mm_page_alloc"] - p["alloc_failed_in_trace"]
    assert p["free_events"] == counts["mm_page_free"]
    assert p["paired"] + p["unpaired"] + p["unpaired_covering"] + p["bad_events"] \
        == p["free_events"]
    # nearly every real request is served by the simulated machine too
    assert sum(r["sim_failures_by_order"]) < 0.001 * r["allocs"]
    ends = [m["text"] for m in manifest["trace"]["markers"]
            if m["text"].startswith("oracle_snap_end")]
    assert len([s for s in r["snapshots"] if s["seq"] is not None]) == len(ends)
    r["machine"].check()
    # the start state matches the start snapshot (pre-fill + fill)
    assert r["fill"]["at"].startswith("start marker")
    rows = W.compare_snapshots(r, RUN_DIR / "snapshots")
    assert rows[0]["tag"] == "start"
    start = rows[0]["zones"]
    real = sum(z["free_real"] + z["pcp_real"] for z in start.values())
    sim = sum(z["free_sim"] + z["pcp_sim"] for z in start.values())
    assert abs(sim - real) < 0.1 * real
    for z in start.values():        # the fill only allocates: never more free than real
        assert z["free_sim"] + z["pcp_sim"] <= z["free_real"] + z["pcp_real"] + 2
    # migrations kept, nearly all placed at the target compaction isolated
    f = r["frees"]
    assert f["migrated"] > 0
    assert f["migration_targets_placed"] > 0.9 * (f["migrated"] + f["migrated_pretrace"])


# ---------------------------------------------------------------------------
# the start state (start="snapshot")
# ---------------------------------------------------------------------------

def test_start_state_places_blocks_at_their_real_pfns(tmp_path):
    """From the start snapshot's kpageflags: free memory exactly as recorded,
    pre-trace and live traced blocks at their real pfns (their frees merge
    there), a compound page as one block, reserved pages reserved, and a page
    the trace shows parked on a pcp list back on that cpu's list."""
    from spbsim.mm.const import PG_buddy, PG_head, PG_reserved
    from spbsim.trace.kpageflags import (KPF_BUDDY, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL,
                                         KPF_LRU, KPF_RESERVED)
    nr = Machine(**SMALL).geometry.nr_pfns
    flags = np.full(nr, 1 << KPF_BUDDY, np.uint64)
    flags[0x20000:0x100000] = 0                     # the hole below 4 GiB (no page)
    flags[0x000:0x100] = 1 << KPF_RESERVED
    flags[0x1000:0x1200] = 1 << KPF_LRU              # page cache, never freed: fill
    flags[0x2000] = (1 << KPF_COMPOUND_HEAD) | (1 << KPF_LRU)
    flags[0x2001:0x2200] = 1 << KPF_COMPOUND_TAIL    # a THP
    flags[0x3000:0x3004] = 1 << KPF_LRU              # pre-trace, freed in the trace
    flags[0x4000] = 0                                # allocated before the marker
    flags[0x105000] = 0                              # parked on cpu 0's pcp list
    _snapshots_dir(tmp_path, flags)
    t = write_trace(tmp_path / "trace.txt", [
        ("a", 0x4000, 0), ("mark", "oracle_snap_end seq=1 tag=start"),
        ("a", 0x105000, 0, "GFP_KERNEL", 0), ("f", 0x3000, 2), ("f", 0x4000, 0),
        ("mark", "oracle_snap_end seq=2 tag=end")])
    r = replay_whatif(t, SMALL, check=True)
    st = r["start"]
    assert st["mode"] == "snapshot" and st["pcp_pages"] == 1 and st["live_blocks"] == 1
    assert st["pretrace_blocks"] == 1 and st["blocks_overlap"] == 0
    start, end = r["snapshots"]
    assert start["tag"] == "start"
    assert sum(z["free_pages"] for z in start["zones"].values()) \
        == int((flags[:nr] == (1 << KPF_BUDDY)).sum())
    assert sum(z["pcp_pages"] for z in start["zones"].values()) == 1
    m = r["machine"].mem
    # the traced allocation of the parked page got exactly that page from the pcp list
    assert m.pg_obj[0x105000] >= 0 and m.pg_flags[0x105000] & PG_head
    assert list(np.flatnonzero(m.pg_obj == m.pg_obj[0x105000])) == [0x105000]
    assert m.pg_flags[0x2000] & PG_head and m.pg_order[0x2000] == 9
    assert m.pg_owner[0x2000] == W.OWNER_FILL and m.pg_owner[0x1000] == W.OWNER_FILL
    assert all(m.pg_flags[q] & PG_reserved for q in (0, 0x10, 0xff))
    # the frees at 0x3000 (order 2) and 0x4000 went to the pcp lists; drained,
    # they merge back into the free buddies around them
    from spbsim.mm.const import PG_pcp
    from spbsim.mm.pcp import drain_all_pages
    assert m.pg_flags[0x3000] & PG_pcp and m.pg_flags[0x4000] & PG_pcp
    drain_all_pages(m)
    for q in (0x3000, 0x4000):
        o = next(k for k in range(11) if m.pg_flags[q & ~((1 << k) - 1)] & PG_buddy
                 and m.pg_order[q & ~((1 << k) - 1)] == k)
        assert o >= 2
    free_end = sum(z["free_pages"] + z["pcp_pages"] for z in end["zones"].values())
    free_start = sum(z["free_pages"] + z["pcp_pages"] for z in start["zones"].values())
    assert free_end == free_start + 4 + 1 - 1
    # no start snapshot with kpageflags: start="snapshot" is refused, "auto" falls back
    (tmp_path / "t2").mkdir()
    t2 = write_trace(tmp_path / "t2" / "trace.txt", [("a", 0x100, 0)])
    with pytest.raises(SpbsimError, match="start='snapshot'"):
        replay_whatif(t2, SMALL, start="snapshot")
    assert "start" not in replay_whatif(t2, SMALL)


def test_a_bulk_allocated_page_inside_a_parked_page_is_no_pre_trace_memory(tmp_path):
    """An order-9 page parked on a per-cpu list at the start is drained later;
    a pcp refill takes a piece of it, alloc_pages_bulk() hands that piece out
    with no mm_page_alloc line, and its free comes with no allocation to pair
    with.  The refill line shows the piece in the allocator during the trace,
    so its free is an untraced allocation's: the start state keeps the whole
    parked page on its list instead of marking the piece pre-trace memory and
    losing the list's 512 pages."""
    from spbsim.trace.kpageflags import KPF_BUDDY
    nr = Machine(**SMALL).geometry.nr_pfns
    flags = np.full(nr, 1 << KPF_BUDDY, np.uint64)
    flags[0x20000:0x100000] = 0                     # the hole below 4 GiB (no page)
    flags[0x105000:0x105200] = 0                     # parked on a pcp list
    _snapshots_dir(tmp_path, flags)
    t = write_trace(tmp_path / "trace.txt", [
        ("mark", "oracle_snap_end seq=1 tag=start"),
        ("dr", 0x105000, 9), ("zl", 0x105010), ("f", 0x105010, 1),
        ("mark", "oracle_snap_end seq=2 tag=end")])
    for mode in ("keep", "free"):
        _, c = pairing(t, migrations=mode)
        assert c["unpaired_pretrace"] == 0 and c["unpaired_untraced"] == 1, mode
    r = replay_whatif(t, SMALL, check=True)
    assert r["start"]["pcp_pages"] == 512 and r["start"]["pcp_overlap"] == 0
    assert r["prefill"]["blocks"] == 0
    start = r["snapshots"][0]
    assert sum(z["pcp_pages"] for z in start["zones"].values()) == 512


@needs_oracle
def test_oracle_start_state_is_the_start_snapshot():
    """The replay starts from the recorded start: at the start marker every
    zone's buddyinfo is the snapshot's up to what changed between the reads
    of buddyinfo and kpageflags (the pre-fill start was off by up to 4k pages
    and 2 pageblocks per zone), and the traced requests all succeed."""
    from spbsim.observe import procfs
    trace = RUN_DIR / "trace.txt.xz"
    r = replay_whatif(trace, ORACLE_MACHINE, max_lines=200_000, check=True)
    assert r["start"]["mode"] == "snapshot" and r["start"]["blocks_overlap"] <= 2
    s0 = r["snapshots"][0]
    assert s0["tag"] == "start"
    snap = next(d for d in sorted((RUN_DIR / "snapshots").iterdir()) if d.name.endswith("-start"))
    files = procfs.read_snapshot(snap)
    names, real = files["buddyinfo"]
    sim_names, sim = procfs.parse_buddyinfo(s0["buddyinfo"])
    for i, name in enumerate(names):
        a = np.asarray(sim[sim_names.index(name)], np.int64)
        b = np.asarray(real[i], np.int64)
        pages = int((b << np.arange(len(b))).sum())
        assert int((np.abs(a - b) << np.arange(len(b))).sum()) <= 0.01 * pages, name
        assert (a[9:] == b[9:]).all(), name
    real_pcp = sum(p["count"] for z in files["zoneinfo"].values() for p in z.get("pagesets", []))
    sim_pcp = sum(z["pcp_pages"] for z in s0["zones"].values())
    assert 0 < sim_pcp <= real_pcp
    assert sum(r["sim_failures_by_order"]) == 0


def test_a_drawn_timer_phase_moves_kcompactds_first_proactive_check(tmp_path, monkeypatch):
    """From the start snapshot: without a draw kcompactd's first wait ends a
    whole HPAGE_FRAG_CHECK_INTERVAL_MSEC after the start state is built; a
    start-seed draw (spbsim.trace.start.draw_timer_phases) ends it at the
    drawn delay, where kcompactd checks the node and waits again."""
    from spbsim.mm.compaction import HPAGE_FRAG_CHECK_INTERVAL_NS
    from spbsim.mm.state import NODE
    from spbsim.trace import start as S
    from spbsim.trace.kpageflags import KPF_BUDDY
    nr = Machine(**SMALL).geometry.nr_pfns
    flags = np.full(nr, 1 << KPF_BUDDY, np.uint64)
    flags[0x20000:0x100000] = 0
    _snapshots_dir(tmp_path, flags)
    ev = [("mark", "oracle_snap_end seq=1 tag=start")]
    for i in range(100):                            # 100 ms of requests, 1 ms apart
        ev.append(("a", 0x108000 + i, 0) if i % 2 == 0 else ("f", 0x108000 + i - 1, 0))
    ev.append(("mark", "oracle_snap_end seq=2 tag=end"))
    t = write_trace(tmp_path / "trace.txt", ev)

    def timeout(seed):
        r = replay_whatif(t, SMALL, start_seed=seed)
        assert r["start"]["mode"] == "snapshot"
        return int(r["machine"].mem.node[NODE["kcompactd_timeout_ns"]]), r
    plain, _ = timeout(None)
    built = round(10.001 * 1e9)                     # the start marker
    assert plain == built + HPAGE_FRAG_CHECK_INTERVAL_NS
    monkeypatch.setattr(S, "draw_timer_phases",
                        lambda seed, k, v: {"kcompactd_ns": 40_000_000, "vmstat_update_ns": v})
    drawn, r = timeout(1)
    assert r["hidden"]["timers"] == {"kcompactd_ns": 40_000_000,
                                     "vmstat_update_ns": W.VMSTAT_INTERVAL_NS}
    # checked at the first request at or after 40 ms, then a whole wait
    assert built + 40_000_000 + HPAGE_FRAG_CHECK_INTERVAL_NS <= drawn \
        < built + 42_000_000 + HPAGE_FRAG_CHECK_INTERVAL_NS


def test_user_compaction_frees_its_sources_where_its_task_ran(tmp_path):
    """The task that wrote compact_memory ran on cpu 1, then on cpu 0, as
    the cpus of the pages it freed in its compaction show; the replayed
    compaction frees its first migrated sources on cpu 1 and the rest on
    cpu 0 (migrate_folio_done() frees on the cpu the task runs on).
    Before, every source went to the cpu of the write (cpu 1)."""
    from spbsim.mm.const import CONFIG_PCP_BATCH_SCALE_MAX
    from spbsim.mm.state import PCP_BATCH, PCP_FREE_COUNT
    from spbsim.trace.kpageflags import KPF_BUDDY, KPF_LRU
    nr = Machine(**SMALL).geometry.nr_pfns
    flags = np.full(nr, 1 << KPF_BUDDY, np.uint64)
    flags[0x20000:0x100000] = 0
    flags[0x104000:0x10c000] = 1 << KPF_LRU         # every other page in use
    flags[0x104000:0x10c000:2] = 1 << KPF_BUDDY
    _snapshots_dir(tmp_path, flags)
    t = write_trace(tmp_path / "trace.txt", [
        ("mark", "oracle_snap_end seq=1 tag=start"), ("ucb",),
        ("uf", 0x104001, 0, 1), ("uf", 0x104003, 0, 1), ("uf", 0x104005, 0, 1),
        ("uf", 0x104007, 0, 0), ("uf", 0x104009, 0, 0), ("uce",),
        ("uf", 0x10400b, 0, 1),                     # after its end: not the compaction's
        ("mark", "oracle_snap_end seq=2 tag=end")])
    for batch in (1 << 16, 3):                      # the compaction across batches too
        stream = W._Stream(t, lenient=False, progress=False, max_lines=None,
                           snapshot_every_s=None, batch_size=batch)
        for _ in stream.chunks():
            pass
        assert list(stream.user_cpus.values()) == [[[3, 1], [5, 0]]]
    r = replay_whatif(t, SMALL, check=True, start="snapshot")
    assert r["user_compactions"]["zones"] == 1
    cap = int(r["machine"].mem.pcp[ZONE_NORMAL, 0, PCP_BATCH]) << CONFIG_PCP_BATCH_SCALE_MAX
    assert r["vmstat"]["pgmigrate_success"] > cap + 5
    # free_count: the pages freed to a list, up to batch << 5 (no allocation
    # halves it here): cpu 1 has its 3 sources and at most the stream's frees
    fc = r["machine"].mem.pcp[ZONE_NORMAL, :, PCP_FREE_COUNT]
    assert fc[0] == cap and fc[1] < 16


def test_user_compaction_takes_time_and_a_snapshot_meanwhile_sees_it_part_done(tmp_path):
    """The kernel's compaction of a zone for a compact_memory write runs for
    seconds (r612-compact-s5: DMA32 from 64.31 to 67.83 s, 59,007 pages
    migrated), and /proc read meanwhile shows it part done.  The replay
    gives the simulator's run the [SIM] time kcompactd's takes
    (compaction_migrate_ns a migrated page, compaction_scan_ns a scanned
    one): a snapshot 12 ms after the write (write_trace adds 1 ms a line)
    sees about 12 ms of migrations, one 10 s later the whole run, which the
    end of the stream did not have to cut short.  The run ends no later
    than the recorded one: a snapshot 2.5 ms after a recorded 3 ms
    compaction sees the whole run.  Before, the whole run was done at the
    write."""
    t = write_trace(tmp_path / "t.txt", _scattered() + [
        ("ucb",), ("t", 0.01), ("mark", "oracle_snap_end seq=1 tag=a"), ("t", 10.0),
        ("mark", "oracle_snap_end seq=2 tag=b"), ("uce",)])
    r = replay_whatif(t, SMALL, prefill=False, check=True, snapshot_detail=True)
    assert r["user_compactions"]["zones"] == 1 and r["user_compactions"]["cut_short"] == 0
    a, b = (s["vmstat"]["pgmigrate_success"] for s in r["snapshots"])
    ts = [s["ts"] for s in r["snapshots"]]
    total = r["vmstat"]["pgmigrate_success"]
    assert b == total > 4096
    from spbsim.mm.state import CFG
    per_page_ns = r["machine"].mem.cfg[CFG["compaction_migrate_ns"]]
    ran_ns = (ts[0] - 10.0) * 1e9 - 1e6 * len(_scattered())    # since the write's begin
    assert 0.5 * ran_ns / per_page_ns < a <= ran_ns / per_page_ns + 512 < total / 4
    # it ends no later than the recorded one: the write went on (or returned)
    t2 = write_trace(tmp_path / "t2.txt", _scattered() + [
        ("ucb",), ("t", 0.001), ("uce",), ("t", 0.0005), ("mark", "oracle_snap_end seq=1 tag=a")])
    r2 = replay_whatif(t2, SMALL, prefill=False, check=True, snapshot_detail=True)
    assert r2["user_compactions"]["cut_short"] == 1
    assert r2["snapshots"][0]["vmstat"]["pgmigrate_success"] == total


def test_a_malformed_user_compaction_begin_is_one_clear_error(tmp_path):
    """A compact_memory write's mm_compaction_begin whose zone_start is not
    a number is named (file, line, event, field) instead of being skipped
    without a word; --lenient skips it."""
    t = write_trace(tmp_path / "t.txt", _scattered(64) + [
        ("ucb",), ("uce",), ("mark", "oracle_snap_end seq=1 tag=x")])
    text = t.read_text()
    assert text.count("zone_start=0x100000 migrate_pfn") == 2
    t.write_text(text.replace("zone_start=0x100000 migrate_pfn",
                              "zone_start=0x10QQ00 migrate_pfn", 1))
    line = next(i for i, x in enumerate(t.read_text().splitlines(), 1) if "0x10QQ00" in x)
    with pytest.raises(TraceFormatError) as e:
        replay_whatif(t, SMALL, prefill=False)
    assert str(e.value) == (f"{t}:{line}: mm_compaction_begin: field 'zone_start': "
                            "expected integer, got '0x10QQ00'")
    r = replay_whatif(t, SMALL, prefill=False, lenient=True)
    assert r["user_compactions"]["zones"] == 0
