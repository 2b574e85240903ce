"""The superpageblock allocator: each pass and transition set up by hand.

Machines of 3 GB have three SPBs in ZONE_DMA32 (slot 1 is the zone's first,
clipped SPB holding the kernel image; slots 2 and 3 are whole and, without a
memmap reservation at the top of RAM, entirely free).  ``full`` allocates every page as an
order-0 movable page (all SPBs clean and full); tests then free chosen
pageblocks to lay out exactly the state a pass needs (as tests/test_mm_fallback
does for the stock rules).  Expectations are from spb-series.md §3.2-3.5 and
spb-source-facts.md §3.1-3.2 (S1).
"""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.errors import ConfigError
from spbsim.mm import gfp as G
from spbsim.mm.const import (MAX_NR_ZONES, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                             ZONE_DMA32, pageblock_nr_pages)
from spbsim.mm.craft import exhaust, free_pages_range, zero_watermarks
from spbsim.mm.spb.params import (SB_TAINTED, NR_SB_FULLNESS, SPB_LIST_EMPTY,
                                  SPB_OUTCOME_NAMES, SPB_STAT)
from spbsim.policy import policy_overrides

KERNEL = G.GFP_KERNEL
RECLAIM = G.GFP_KERNEL | G.__GFP_RECLAIMABLE
MOVABLE = G.GFP_HIGHUSER_MOVABLE
Z = ZONE_DMA32


def machine(preset="v1", memory="3G", **kw):
    kw.setdefault("pcp", False)
    kw.setdefault("early_unmovable", 0)
    kw.setdefault("watermark_boost_factor", 0)
    kw.setdefault("reclaim", False)
    kw.setdefault("compaction", False)
    kw.setdefault("migrate_untracked", True)
    kw.setdefault("memmap_bytes_per_page", 0)   # no memmap at the top: slot 3 is free too
    return Machine(memory, cpus=1, spb=preset, **kw)


def full(preset="v1", **kw):
    m = machine(preset, **kw)
    zero_watermarks(m)
    exhaust(m)
    return m


def slot_start(m, i):
    return int(m.mem.spb.start_pfn[i])


def pb(m, i, k):
    """pfn of the k-th pageblock of SPB slot i."""
    return slot_start(m, i) + k * pageblock_nr_pages


def free_block(m, pfn):
    free_pages_range(m, pfn, pageblock_nr_pages)


def outcomes(m):
    return {n: int(m.mem.spb.outcome[i]) for i, n in enumerate(SPB_OUTCOME_NAMES)}


def stat(m, name):
    return int(m.mem.spb.stat[:, SPB_STAT[name]].sum())


def delta_outcome(m, fn):
    before = outcomes(m)
    r = fn()
    after = outcomes(m)
    return r, {k: after[k] - before[k] for k in after if after[k] != before[k]}


def tainted(m):
    return int(m.mem.spb.nr_tainted_spbs.sum())


def taint_slot(m, i, k=10, gfp=KERNEL):
    """Make SPB slot i tainted: free pageblock k, then one non-movable page
    (no tainted SPB exists, so __rmqueue_claim's fallback category claims it)."""
    free_block(m, pb(m, i, k))
    p = m.alloc(0, gfp)
    assert p is not None and pb(m, i, k) <= p < pb(m, i, k + 1)
    return p


def test_policies_and_switch_errors():
    assert policy_overrides("spb:v1-pre43")["spb"] == "v1-pre43"
    assert policy_overrides("spb")["spb"] == "v1"
    with pytest.raises(ConfigError, match="spb:v9"):
        policy_overrides("spb:v9")
    with pytest.raises(ConfigError, match="spb.hint"):
        Machine("1G", spb="v1", spb_set={"hint": "maybe"})
    with pytest.raises(ConfigError, match="spb.nonsense: unknown switch"):
        Machine("1G", spb="v1", spb_set={"nonsense": 1})
    with pytest.raises(ConfigError, match="spb_set given without spb"):
        Machine("1G", spb_set={"hint": True})


def test_boot_files_every_free_spb_on_the_empty_list():
    m = machine()
    s = m.mem.spb
    assert s.list_nr[Z, SPB_LIST_EMPTY] == 2          # the two whole DMA32 SPBs
    assert tainted(m) == 0
    m.check()
    assert "superpageblocks" in m.spb_dump()


def test_free_pages_live_on_per_spb_lists():
    """Under SPBs the zone free_area lists are empty; the zone counts shadow
    the per-SPB lists (S1 §10)."""
    m = machine()
    mem = m.mem
    assert (mem.fa_head[:MAX_NR_ZONES] < 0).all()
    assert mem.fl_nr[MAX_NR_ZONES:].sum() == mem.fa_nr.sum() > 0


def test_first_unmovable_taints_one_spb_then_stays_there():
    m = machine()
    _, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
    assert d == {"pass_3": 1}                  # PASS_3 claims a block of an empty SPB
    assert tainted(m) == 1
    for _ in range(2000):
        assert m.alloc(0, KERNEL) is not None
    assert tainted(m) == 1                     # PASS_1 keeps unmovable in the tainted SPB
    oc = outcomes(m)
    assert oc["pass_1"] + oc["hint"] + oc["pass_2"] >= 1999   # v1 has the PASS_1 hint cache
    m.check()


def test_s1_reaches_a_fresh_spb_only_through_claim():
    """At S1 PASS_3 serves only the matching type (free blocks of empty SPBs
    are MOVABLE): a non-movable request taints a fresh SPB via __rmqueue_claim's
    EMPTY category (spb-source-facts §3.1)."""
    m = machine("s1")
    _, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
    assert d == {"no_page": 1, "claim": 1}     # every pass fails, then the claim
    assert tainted(m) == 1
    m.check()


def test_movable_prefers_clean_spbs():
    m = machine()
    m.alloc(0, KERNEL)
    t = int(np.flatnonzero((m.mem.spb.list_id >= SB_TAINTED * NR_SB_FULLNESS)
                           & (m.mem.spb.list_id < (SB_TAINTED + 1) * NR_SB_FULLNESS))[0])
    pfns = m.run_ops(np.zeros(5000, np.int64), MOVABLE)
    lo, hi = slot_start(m, t), slot_start(m, t) + (1 << 18)
    assert not ((pfns >= lo) & (pfns < hi)).any()
    m.check()


def test_pass_1_then_pass_2_in_a_tainted_spb():
    m = full()
    taint_slot(m, 2, k=10)
    free_block(m, pb(m, 2, 20))
    r, d = delta_outcome(m, lambda: m.run_ops(np.zeros(511, np.int64), KERNEL))
    assert d == {"pass_1": 1, "hint": 510}     # the rest of the claimed block (then the hint)
    p, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
    assert d == {"pass_2": 1}                  # a whole free MOVABLE block of the tainted SPB
    assert pb(m, 2, 20) <= p < pb(m, 2, 21)
    assert m.mem.pb_mt[p >> 9] == MIGRATE_UNMOVABLE
    assert tainted(m) == 1
    m.check()


def _exhaust_claimed_block(m):
    m.run_ops(np.zeros(511, np.int64), KERNEL)


def test_pass_2b_claims_a_fragment_without_the_half_rule():
    m = full()
    taint_slot(m, 2, k=10)
    _exhaust_claimed_block(m)
    frag = pb(m, 2, 30)
    free_pages_range(m, frag, 8)               # 8 free pages: far below the 50% rule
    p, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
    assert d == {"pass_2b": 1}
    assert frag <= p < frag + 8
    assert m.mem.pb_mt[frag >> 9] == MIGRATE_UNMOVABLE     # relabelled
    m.check()


def test_pass_2d_borrows_from_movable_without_relabel():
    m = full(spb_set={"pass_2b": False})
    taint_slot(m, 2, k=10)
    _exhaust_claimed_block(m)
    frag = pb(m, 2, 30)
    free_pages_range(m, frag, 8)
    p, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
    assert d == {"pass_2d": 1}
    assert m.mem.pb_mt[frag >> 9] == MIGRATE_MOVABLE       # no relabel
    m.free(p)
    assert m.mem.fa_nr[Z, 3, MIGRATE_MOVABLE] >= 1        # back on the MOVABLE list, merged
    m.check()


def test_pass_2c_borrows_across_unmovable_and_reclaimable():
    m = full()
    taint_slot(m, 2, k=10)
    _exhaust_claimed_block(m)
    free_block(m, pb(m, 2, 40))
    r = m.alloc(0, RECLAIM)                     # PASS_2 claims block 40 for RECLAIMABLE
    assert pb(m, 2, 40) <= r < pb(m, 2, 41)
    assert m.mem.pb_mt[r >> 9] == MIGRATE_RECLAIMABLE
    p, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
    assert d == {"pass_2c": 1}
    assert pb(m, 2, 40) <= p < pb(m, 2, 41)
    assert m.mem.pb_mt[p >> 9] == MIGRATE_RECLAIMABLE      # borrowed, not relabelled
    m.check()


def test_pass_4_movable_falls_into_tainted_spb_above_reserve():
    m = full()
    taint_slot(m, 2, k=10)
    for k in range(100, 100 + 20):              # 20 free blocks > dynamic reserve 16
        free_block(m, pb(m, 2, k))
    p, d = delta_outcome(m, lambda: m.alloc(0, MOVABLE))
    assert d == {"pass_4": 1}
    assert slot_start(m, 2) <= p < slot_start(m, 2) + (1 << 18)
    m.check()


def test_pass_4_honours_the_tainted_reserve():
    m = full()
    taint_slot(m, 2, k=10)
    for k in range(100, 100 + 10):              # 10 free blocks <= reserve 16
        free_block(m, pb(m, 2, k))
    p, d = delta_outcome(m, lambda: m.alloc(0, MOVABLE))
    assert "pass_4" not in d
    assert p is None or not (slot_start(m, 2) <= p < slot_start(m, 2) + (1 << 18)) \
        or m.mem.pb_mt[p >> 9] == MIGRATE_MOVABLE


def test_movable_reserve_skip_switch_strands_or_releases_tainted_free_pages():
    """Clean SPBs full, the only free pages in a tainted SPB below its
    reserve: the [S] skip leaves them to non-movable requests (the movable
    request fails with free memory in the zone), the ablation takes them."""
    got = {}
    for skip in (True, False):
        m = full(spb_set={"movable_reserve_skip": skip})
        taint_slot(m, 2, k=10)
        for k in range(100, 104):               # 4 free MOVABLE blocks <= reserve 16
            free_block(m, pb(m, 2, k))
        p, d = delta_outcome(m, lambda: m.alloc(0, MOVABLE))
        got[skip] = (p, d)
        m.check()
    p, d = got[True]
    assert p is None and "pass_4" not in d
    p, d = got[False]
    assert d == {"pass_4": 1} and pb(m, 2, 100) <= p < pb(m, 2, 104)


def test_patch43_react_trigger_kicks_defrag_only_with_patch_43():
    for preset, kicks in (("v1", 1), ("v1-pre43", 0)):
        m = full(preset)
        taint_slot(m, 2, k=10)          # the clean->tainted transition queues defrag
        m.spb_run_pending()             # which runs without progress (memory is full)
        m.mem.cur[1] = 10 ** 10         # long after the 5 s cooldown
        before = stat(m, "spb_react_kicks")
        m.alloc(0, KERNEL)                      # PASS_1 in a tainted SPB below high water
        assert stat(m, "spb_react_kicks") - before == kicks, preset


def test_last_chance_walk_kicks_defrag_before_pass_3():
    for preset, want in (("v1", True), ("v1-pre43", False)):
        m = full(preset)
        taint_slot(m, 2, k=10)
        _exhaust_claimed_block(m)
        m.mem.cur[1] = 10 ** 9
        # let the SPB's defrag run once without progress (nowhere to migrate to)
        m.spb_run_pending()
        m.mem.spb.defrag_state[:] = 0
        m.mem.cur[1] = 20 * 10 ** 9              # cooldown (5 s) long expired
        # an empty SPB for PASS_3: free all of slot 3
        for k in range(512):
            free_block(m, pb(m, 3, k))
        before = stat(m, "spb_last_chance_kicks")
        _, d = delta_outcome(m, lambda: m.alloc(0, KERNEL))
        assert d == {"pass_3": 1}
        assert (stat(m, "spb_last_chance_kicks") > before) == want, preset
        m.check()


def test_defrag_worker_evacuates_movable_blocks_and_frees_pageblocks():
    m = full("v1")
    taint_slot(m, 2, k=10)
    for k in range(512):                         # room elsewhere: slot 3 entirely free
        free_block(m, pb(m, 3, k))
    s = m.mem.spb
    i = 2
    nr_free0 = int(s.nr_free[i])
    m.mem.cur[1] = 10 ** 9
    m.alloc(0, KERNEL)                           # react: below high water -> queued
    assert s.defrag_state[i] == 1
    m.spb_run_pending()
    assert int(s.nr_free[i]) > nr_free0          # progress: pageblocks emptied
    assert stat(m, "spb_defrag_migrated") > 0
    assert s.defrag_last_no_progress_ns[i] < 0   # never stamped
    m.check()


def test_no_progress_stamps_and_cooldown_gates():
    m = full("v1")
    taint_slot(m, 2, k=10)
    s = m.mem.spb
    m.mem.cur[1] = 10 ** 9
    m.alloc(0, KERNEL)
    m.spb_run_pending()                          # nowhere to migrate: no progress
    assert s.defrag_last_no_progress_ns[2] == 10 ** 9
    kicks = stat(m, "spb_defrag_kicks")
    m.mem.cur[1] = 3 * 10 ** 9                   # inside the 5 s cooldown
    m.alloc(0, KERNEL)
    assert stat(m, "spb_defrag_kicks") == kicks
    m.mem.cur[1] = 7 * 10 ** 9                   # past it
    m.alloc(0, KERNEL)
    assert stat(m, "spb_defrag_kicks") == kicks + 1


def test_cheap_fallback_caller_is_refused_a_clean_spb():
    m = full("v1")
    taint_slot(m, 2, k=10)
    _exhaust_claimed_block(m)
    for k in range(512):
        free_block(m, pb(m, 3, k))
    before = tainted(m)
    p = m.alloc(2, G.GFP_NOWAIT)                 # atomic shape, movable? no: unmovable
    assert p is None
    assert tainted(m) == before
    assert stat(m, "spb_cheap_refusals") >= 1
    p = m.alloc(2, KERNEL)                        # a reclaiming caller may taint
    assert p is not None and tainted(m) == before + 1


def test_contig_takes_an_empty_spb_and_isolates_it():
    m = machine("v1")
    got = m.alloc_contig_1g()
    assert got is not None and got[1] == 0
    s = m.mem.spb
    i = int(np.flatnonzero(s.start_pfn == got[0])[0])
    assert s.contig_allocated[i] == 1 and s.list_id[i] == 11
    m.check()
    m.free_contig_1g(got[0])
    assert s.contig_allocated[i] == 0 and s.list_id[i] == SPB_LIST_EMPTY
    m.check()


def test_random_stream_keeps_every_invariant():
    for preset in ("s1", "v1", "v1-pre43", "v2"):
        m = Machine("3G", cpus=2, spb=preset, seed=3, migrate_untracked=True)
        rng = np.random.default_rng(7)
        live = []
        for step in range(30):
            n = 400
            orders = rng.choice([0, 0, 0, 1, 2, 3, 9], n)
            gfps = rng.choice([KERNEL, RECLAIM, MOVABLE, MOVABLE, G.GFP_ATOMIC], n)
            out = m.run_ops(orders, gfps, cpu=rng.integers(0, 2, n))
            live += [(int(p), int(o)) for p, o in zip(out, orders) if p >= 0]
            rng.shuffle(live)
            k = len(live) // 3
            if k:
                m.run_ops([o for _, o in live[:k]], 0, pfns=[p for p, _ in live[:k]])
                live = live[k:]
            m.mem.cur[1] += 10 ** 9
            m.spb_run_pending()
            live = [(p, o) for p, o in live if m.mem.pg_flags[p] & 0x02]   # migrated blocks moved
            if step % 5 == 4:
                m.check()
        m.check()


def test_merged_free_chunk_takes_one_type_for_every_pageblock():
    """__free_one_page's "match buddy type" under the relabel rule: a free
    RECLAIMABLE pageblock still flagged PB_all_free (relabelled by a claim that
    then took its page elsewhere) merges with its freed RECLAIMABLE buddy into
    an order-10 chunk.  mark_pageblock_free relabels only the block that was not
    yet flagged, so the chunk went on the MOVABLE list with its upper half still
    RECLAIMABLE, and the next split put that half on the wrong list (found in a
    devvm-256g run; the checker now looks at every pageblock of a chunk)."""
    from spbsim.mm.buddy import move_freepages_block
    from spbsim.mm.const import PB_all_free, PG_buddy
    m = full("v1")
    lo, hi = pb(m, 2, 0), pb(m, 2, 1)
    assert lo % (2 * pageblock_nr_pages) == 0
    free_block(m, hi)
    move_freepages_block(m.mem, Z, hi, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
    assert m.mem.pb_flags[hi // pageblock_nr_pages] & PB_all_free
    m.check()
    m.mem.pb_mt[lo // pageblock_nr_pages] = MIGRATE_RECLAIMABLE   # allocated: no free page moves
    free_block(m, lo)
    assert m.mem.pg_flags[lo] & PG_buddy and m.mem.pg_order[lo] == 10
    assert m.mem.pb_mt[lo // pageblock_nr_pages] == MIGRATE_MOVABLE
    assert m.mem.pb_mt[hi // pageblock_nr_pages] == MIGRATE_MOVABLE
    m.check()
