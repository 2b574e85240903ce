"""Tests of the placement replay (spbsim.trace.replay / .placement).

Synthetic cases check the range-removal and free primitives against the buddy
rules on a small machine, with the DEBUG_VM checker after every step.  The
oracle run ``run1-mixed-s1`` (found via $SPBSIM_ORACLE or <repo>/../shared/oracle,
else skipped) is replayed partly in the default suite and wholly under
``@pytest.mark.slow``.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from spbsim.mm.const import (MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                             PG_buddy, PG_head, pageblock_nr_pages)
from spbsim.mm.state import CFG, ZS_MANAGED
from spbsim.trace import placement as pl
from spbsim.trace.kpageflags import KPF_BUDDY, KPF_LRU, KPF_PGTABLE, KPF_SLAB
from spbsim.trace.replay import (PlacementReplay, format_table, initial_block_types,
                                    main, make_ops, oracle_machine, read_index,
                                    replay_placement)

REPO = Path(__file__).resolve().parent.parent
RUN = "run1-mixed-s1"


from oracle import oracle_root as _oracle_root  # noqa: E402


def _run_dir():
    root = _oracle_root()
    for d in (root / RUN, root):
        if (d / "manifest.json").exists() and (d / "snapshots").is_dir() \
                and (d / "trace.txt.xz").exists():
            return d
    return None


RUN_DIR = _run_dir()
needs_oracle = pytest.mark.skipif(
    RUN_DIR is None, reason=f"no oracle run with manifest.json, snapshots/ and trace.txt.xz "
                            f"under {_oracle_root()} (set SPBSIM_ORACLE)")

Z_DMA32 = 1
B = 0x2000          # a pageblock-aligned pfn in DMA32 of the synthetic machine


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

@pytest.fixture
def rep():
    """A 1 GiB machine with every page allocated (one order-9 block per pageblock)."""
    r = PlacementReplay(oracle_machine(memory="1G", cpus=2))
    r.reset_allocated()
    r.machine.check()
    return r


def free_blocks(r, lo=0, hi=None):
    """{(pfn, order)} of the free buddies with heads in [lo, hi)."""
    m = r.mem
    hi = m.pg_flags.size if hi is None else hi
    heads = lo + np.flatnonzero(m.pg_flags[lo:hi] & PG_buddy)
    return {(int(p), int(m.pg_order[p])) for p in heads}


def run(r, *events, mode=pl.MODE_STRICT):
    r.apply(make_ops(list(events)), mode)
    r.machine.check()


def zl(pfn, order=0, mt=MIGRATE_MOVABLE, cpu=0):
    return {"kind": "mm_page_alloc_zone_locked", "pfn": pfn, "order": order,
            "migratetype": mt, "cpu": cpu}


def drain(pfn, order=0, mt=MIGRATE_MOVABLE, cpu=0):
    return {"kind": "mm_page_pcpu_drain", "pfn": pfn, "order": order, "migratetype": mt,
            "cpu": cpu}


def free(pfn, order):
    return {"kind": "mm_page_free", "pfn": pfn, "order": order}


def res(r, slot, outcome):
    return r.res[pl.SLOTS.index(slot), pl.OUTCOMES.index(outcome)].tolist()


# ---------------------------------------------------------------------------
# synthetic: removal and free primitives
# ---------------------------------------------------------------------------

def test_reset_allocated_is_a_consistent_full_machine(rep):
    m = rep.mem
    assert m.nr_free.sum() == 0
    present = np.flatnonzero(m.pb_zone >= 0)
    assert (m.pg_flags[present * pageblock_nr_pages] & PG_head).all()
    rep.insert_free([B], [3])
    assert free_blocks(rep) == {(B, 3)}
    assert m.nr_free[Z_DMA32, 3] == 1
    assert res(rep, "init_free", "exact")[3] == 1
    rep.machine.check()


def test_remove_page_inside_order3_buddy_then_free_it_back(rep):
    rep.insert_free([B], [3])
    run(rep, zl(B + 5))
    # [B, B+8) minus B+5: B..B+3 (order 2), B+4 (order 0), B+6..B+7 (order 1)
    assert free_blocks(rep) == {(B, 2), (B + 4, 0), (B + 6, 1)}
    assert rep.mem.nr_free[Z_DMA32, :4].tolist() == [1, 1, 1, 0]
    assert rep.mem.pg_flags[B + 5] & PG_head and rep.mem.pg_order[B + 5] == 0
    # B+5 is not the head of the buddy it came from: the kernel's buddy started there
    assert res(rep, "zone_locked", "inner")[0] == 1
    run(rep, drain(B + 5))
    assert free_blocks(rep) == {(B, 3)}
    assert res(rep, "pcpu_drain", "exact")[0] == 1


def test_remove_head_page_is_expand(rep):
    rep.insert_free([B], [3])
    run(rep, zl(B))
    # expand(): the upper halves go back, B stays allocated
    assert free_blocks(rep) == {(B + 1, 0), (B + 2, 1), (B + 4, 2)}
    assert res(rep, "zone_locked", "expand")[0] == 1
    run(rep, zl(B + 2, 1), zl(B + 4, 2), zl(B + 1, 0))
    assert free_blocks(rep) == set()
    assert res(rep, "zone_locked", "exact")[:3] == [1, 1, 1]
    run(rep, drain(B + 4, 2), drain(B + 1), drain(B), drain(B + 2, 1))
    assert free_blocks(rep) == {(B, 3)}


def test_free_inside_allocated_block_splits_it(rep):
    """A page freed out of an allocated order-9 block (a split THP): the rest
    stays allocated as aligned blocks, and freeing all of it merges back."""
    rep.insert_free([B], [9])
    run(rep, zl(B, 9))
    assert free_blocks(rep) == set()
    run(rep, drain(B + 7))
    assert free_blocks(rep) == {(B + 7, 0)}
    m = rep.mem
    assert m.pg_flags[B] & PG_head and m.pg_order[B] == 2            # B..B+3
    assert m.pg_flags[B + 256] & PG_head and m.pg_order[B + 256] == 8
    run(rep, *[drain(p) for p in range(B, B + 512) if p != B + 7])
    assert free_blocks(rep) == {(B, 9)}
    assert res(rep, "pcpu_drain", "exact")[0] == 512


def test_residues_are_counted_not_fatal(rep):
    rep.insert_free([B + 4], [2])                      # B+4..B+7 free
    run(rep, zl(B + 100))                              # allocated: nothing free
    assert res(rep, "zone_locked", "none")[0] == 1
    run(rep, zl(B, 3))                                 # half of it free
    assert res(rep, "zone_locked", "partial")[3] == 1
    assert free_blocks(rep, B, B + 512) == set()
    assert rep.mem.pg_order[B] == 3 and rep.mem.pg_flags[B] & PG_head
    run(rep, drain(B, 3))
    assert free_blocks(rep, B, B + 512) == {(B, 3)}
    run(rep, drain(B + 2))                             # already free: double free
    assert res(rep, "pcpu_drain", "none")[0] == 1
    run(rep, free(B, 4))                               # half free already
    assert res(rep, "free", "partial")[4] == 1
    assert free_blocks(rep, B, B + 512) == {(B, 4)}
    run(rep, free(B, 4))
    assert res(rep, "free", "none")[4] == 1
    assert free_blocks(rep, B, B + 512) == {(B, 4)}


def test_pcp_order_frees_are_ignored_others_applied(rep):
    run(rep, free(B, 0), free(B + 8, 3), free(B + 512, 9))   # go to pcp lists
    assert free_blocks(rep) == set()
    assert rep.counters()["pcp_order_frees_ignored"] == 3
    run(rep, free(B + 16, 4))
    assert free_blocks(rep) == {(B + 16, 4)}
    run(rep, free(0x4000, 10))                          # split_large_buddy
    assert free_blocks(rep, 0x4000, 0x4400) == {(0x4000, 10)}
    assert res(rep, "free", "exact")[4] == res(rep, "free", "exact")[10] == 1


def test_consistent_mode_applies_only_what_fits(rep):
    rep.insert_free([B], [3])
    run(rep, drain(B + 1), mode=pl.MODE_CONSISTENT)             # already free: skip
    run(rep, zl(B + 100), mode=pl.MODE_CONSISTENT)              # not free: skip
    assert res(rep, "pcpu_drain", "skipped")[0] == 1
    assert res(rep, "zone_locked", "skipped")[0] == 1
    assert free_blocks(rep) == {(B, 3)}
    run(rep, zl(B, 1), mode=pl.MODE_CONSISTENT)                 # free: applied
    assert free_blocks(rep) == {(B + 2, 1), (B + 4, 2)}


def test_zone_locked_reveals_block_type(rep):
    m = rep.mem
    pb = B // pageblock_nr_pages
    rep.insert_free([B, B + 64], [3, 4])
    assert m.pb_mt[pb] == MIGRATE_MOVABLE
    assert m.fa_nr[Z_DMA32, 4, MIGRATE_MOVABLE] == 1
    run(rep, zl(B, 0, MIGRATE_UNMOVABLE))
    # the block is UNMOVABLE now and its other free buddies moved along
    assert m.pb_mt[pb] == MIGRATE_UNMOVABLE
    assert m.fa_nr[Z_DMA32, 4, MIGRATE_UNMOVABLE] == 1
    assert m.fa_nr[Z_DMA32, 4, MIGRATE_MOVABLE] == 0
    c = rep.counters()
    assert c["retype_zone_locked"] == 1 and c["first_reveal"] == 1 \
        and c["first_reveal_wrong"] == 1
    run(rep, drain(B + 200, 0, MIGRATE_RECLAIMABLE))
    assert m.pb_mt[pb] == MIGRATE_RECLAIMABLE
    assert rep.counters()["retype_pcpu_drain"] == 1


def test_extfrag_whole_block_steal_and_claim(rep):
    m = rep.mem
    p = 0x8000
    rep.insert_free([p], [10])
    # v6.12 whole-block steal: no zone_locked line; both pageblocks change type
    run(rep, {"kind": "mm_page_alloc_extfrag", "pfn": p, "order": 0, "migratetype": 0,
              "fallback_order": 10, "fallback_migratetype": 1, "change_ownership": 1,
              "cpu": 1})
    assert m.pb_mt[p // 512] == m.pb_mt[p // 512 + 1] == MIGRATE_UNMOVABLE
    assert free_blocks(rep, p, p + 1024) == {(p + 1, 0), (p + 2, 1), (p + 4, 2), (p + 8, 3),
                                             (p + 16, 4), (p + 32, 5), (p + 64, 6),
                                             (p + 128, 7), (p + 256, 8), (p + 512, 9)}
    assert m.fa_nr[Z_DMA32, 9, MIGRATE_UNMOVABLE] == 1
    # claim: the zone_locked line of the same cpu comes first; no second removal
    run(rep, zl(p + 1, 0, MIGRATE_UNMOVABLE, cpu=1),
        {"kind": "mm_page_alloc_extfrag", "pfn": p + 1, "order": 0, "migratetype": 0,
         "fallback_order": 5, "fallback_migratetype": 1, "change_ownership": 1, "cpu": 1})
    c = rep.counters()
    assert c["extfrag_whole_block"] == 1 and c["extfrag_claim"] == 1
    assert res(rep, "zone_locked", "exact")[0] == 1
    assert (p + 2, 1) in free_blocks(rep)


def _xf(pfn, fo, mt, fmt, chown, order=0, cpu=1):
    return {"kind": "mm_page_alloc_extfrag", "pfn": pfn, "order": order, "migratetype": mt,
            "fallback_order": fo, "fallback_migratetype": fmt, "change_ownership": chown,
            "cpu": cpu}


def test_v61_extfrag_comes_before_the_zone_locked_line_of_its_page(rep):
    """v6.1's __rmqueue_fallback traces the fallback buddy, then __rmqueue's
    retry of __rmqueue_smallest prints the page taken.  A claim: the block
    changes type and the page comes from the moved buddies, not from the
    fallback buddy the extfrag names.  A steal: the stolen buddy is taken and
    its block keeps the fallback type although the retry prints the
    requested one."""
    m = rep.mem
    rep.extfrag_first = True
    p = B + 512
    rep.insert_free([p + 3, p + 32], [0, 5])
    run(rep, _xf(p + 32, 5, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, 1),
        zl(p + 3, 0, MIGRATE_UNMOVABLE, cpu=1))
    assert m.pb_mt[p // 512] == MIGRATE_UNMOVABLE
    assert free_blocks(rep, p, p + 512) == {(p + 32, 5)}
    c = rep.counters()
    assert c["extfrag_before_zone_locked"] == 1 and c["extfrag_claim"] == 1
    assert res(rep, "zone_locked", "exact")[0] == 1
    assert sum(sum(res(rep, "extfrag", o)) for o in pl.OUTCOMES) == 0
    s = B + 1024
    m.pb_mt[s // 512] = MIGRATE_UNMOVABLE
    rep.insert_free([s], [5])
    run(rep, _xf(s, 5, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, 0),
        zl(s, 0, MIGRATE_MOVABLE, cpu=1))
    assert m.pb_mt[s // 512] == MIGRATE_UNMOVABLE
    assert free_blocks(rep, s, s + 512) == {(s + 1, 0), (s + 2, 1), (s + 4, 2), (s + 8, 3),
                                            (s + 16, 4)}
    assert rep.counters()["extfrag_steal"] == 1
    assert res(rep, "zone_locked", "expand")[0] == 1
    rep.machine.check()


def test_extfrag_first_follows_the_recorded_kernel():
    from spbsim.trace.replay import extfrag_first
    assert extfrag_first({"kernel": {"release": "6.1.0-57-amd64"}})
    assert not extfrag_first({"kernel": {"release": "6.12.117+deb12-amd64"}})
    assert extfrag_first({"kernel": {"release": "6.14.2"}})
    assert not extfrag_first({"kernel": {"release": "6.16.0"}})
    assert not extfrag_first({}) and not extfrag_first({"kernel": {}})


def test_isolate_freepages_infers_the_stride(rep):
    x = 0x6000
    singles = [x, x + 5, x + 32, x + 64]
    rep.insert_free(singles, [0] * 4)
    # stride 32 visits x, x+32, x+64, ... (16 pages scanned) and takes 3 pages
    run(rep, {"kind": "isolate_freepages", "pfn": x, "end": x + 512, "nr_scanned": 16,
              "nr_taken": 3})
    assert free_blocks(rep, x, x + 512) == {(x + 5, 0)}
    assert res(rep, "isolate_freepages", "exact")[0] == 1
    # taken pages are allocated, and freeing them (compaction_free/release) works
    run(rep, drain(x + 32))
    assert free_blocks(rep, x, x + 512) == {(x + 5, 0), (x + 32, 0)}


def test_isolate_freepages_fast_isolation_excess(rep):
    """fast_isolate_freepages() takes a page off a free list untraced, then
    fast_isolate_around() scans its block with stride 1 (traced): the excess
    a stride-1 rescan finds is that page, and it is taken too."""
    x = 0x6000
    rep.insert_free([x + 3, x + 64], [0, 6])
    run(rep, {"kind": "isolate_freepages", "pfn": x, "end": x + 512, "nr_scanned": 512,
              "nr_taken": 1})
    assert free_blocks(rep, x, x + 512) == set()
    assert res(rep, "isolate_freepages", "fast")[6] == 1


def test_initial_block_types_from_contents_and_counts():
    """Four pageblocks: LRU pages, slab pages, page tables, one fully free."""
    n = 4 * 512
    flags = np.zeros(n, np.uint64)
    flags[0:512] = 1 << KPF_LRU
    flags[512:1024] = 1 << KPF_SLAB
    flags[1024:1536] = 1 << KPF_PGTABLE
    flags[1536:2048] = 1 << KPF_BUDDY
    block_count = np.array([[1, 2, 1, 0, 0]])
    free_count = np.zeros((1, 5, 11), np.int64)
    free_count[0, MIGRATE_MOVABLE, 9] = 1
    pb = initial_block_types(flags, np.array([1536]), np.array([9]), [(0, 0, n)],
                             block_count, free_count, 4)
    assert pb.tolist() == [MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                           MIGRATE_MOVABLE]


# ---------------------------------------------------------------------------
# oracle
# ---------------------------------------------------------------------------

@needs_oracle
def test_oracle_machine_geometry():
    manifest = json.loads((RUN_DIR / "manifest.json").read_text())
    m = oracle_machine(manifest)
    mem = m.mem
    assert [(int(mem.zone_start[z]), int(mem.zone_end[z])) for z in range(3)] == \
        [(0, 0x1000), (0x1000, 0x20000), (0x100000, 0x140000)]
    assert m.cpus == 2 and int(mem.cfg[CFG["pcp_enabled"]]) == 0
    assert int(mem.zstat[:, ZS_MANAGED].sum()) == 0x20000 + 0x40000
    idx = read_index(RUN_DIR / "snapshots")
    assert idx[0]["tag"] == "pretrace" and any(s["tag"] == "start" for s in idx)


@needs_oracle
def test_replay_first_300k_lines():
    r = replay_placement(RUN_DIR / "trace.txt.xz", RUN_DIR / "snapshots",
                         max_lines=300_000, check=True)
    snaps = r["snapshots"]
    assert [s["tag"] for s in snaps] == ["periodic-0001", "periodic-0002"]
    first = snaps[0]
    # measured: 0 pages at the best instant of the snapshot window (all zones,
    # every order); 890 pages at the snapshot's first-file time (its buddyinfo
    # was read near the window's end, 19 ms later)
    assert first["pages"] <= 16
    assert first["pages_first_file"] <= 2000
    assert snaps[1]["pages"] <= 16                    # measured 0
    assert all(s["check"] is None for s in snaps)     # DEBUG_VM, all invariants
    # the start window: kpageflags already shows the 297 pages drained there
    assert sum(r["residues"]["pcpu_drain"]["skipped"]) == 297
    assert r["start"]["block_types"] == {"DMA": [1, 7, 0, 0, 0], "DMA32": [34, 212, 2, 0, 0],
                                         "Normal": [52, 436, 24, 0, 0]}
    for slot in ("zone_locked", "pcpu_drain", "free"):
        for outcome in ("partial", "none"):
            assert sum(r["residues"].get(slot, {}).get(outcome, [0])) == 0
    assert "periodic-0001" in format_table(r)


@needs_oracle
def test_cli_prints_table(capsys):
    assert main([str(RUN_DIR), "--max-lines", "150000"]) == 0
    out = capsys.readouterr().out
    assert "periodic-0001" in out and "residues" in out


@needs_oracle
@pytest.mark.slow
def test_full_replay():
    r = replay_placement(RUN_DIR / "trace.txt.xz", RUN_DIR / "snapshots", check=True)
    snaps = [s for s in r["snapshots"] if s["tag"].startswith("periodic-")]
    assert len(snaps) == 53
    pages = [s["pages"] for s in snaps]
    # measured: 0 for periodic-0001..0010 (before compaction starts at 49.9 s),
    # then <= 51 until 98 s, at most 1054 (Normal, untraced fast isolation by
    # kcompactd at 100 s), 446 at the last one
    assert max(pages[:10]) <= 16
    assert max(pages) <= 1500
    assert float(np.median(pages)) <= 100             # measured 42
    assert all(s["check"] is None for s in r["snapshots"])
    res = r["residues"]
    assert sum(res["zone_locked"].get("none", [0])) <= 400        # measured 233
    assert sum(res["pcpu_drain"].get("none", [0])) <= 1200        # measured 855
    assert sum(res["isolate_freepages"]["exact"]) >= 3500         # measured 3591 of 3610
    c = r["counters"]
    assert c["first_reveal_wrong"] <= 0.06 * c["first_reveal"]    # measured 24 of 637
    assert r["seconds"] < 120
