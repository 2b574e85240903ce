"""Reclaim (mm/vmscan.c): shrink the reclaim lists, kswapd's balance_pgdat,
and direct reclaim (try_to_free_pages).

Model (linux-allocator.md §4.4): file pages are reclaimed oldest first, then
anonymous pages if swap is on; reclaimable slab pages are scanned by a
shrinker that frees a scanned page only when all its objects went, with a
chance ``slab_free_ppm`` per scan [SIM].  Reclaimed blocks go back through
the normal free path (pcp first), since where they land changes merging.
"""
from .compaction import reset_isolation_suitable
from .const import PG_pinned, pageblock_order
from .jit import njit, njit_inline
from .lru import lru_add, lru_del
from .page_free import free_pages_call
from .tracepoint import EV_KSWAPD_SLEEP, trace_event
from .split import piece_index
from .const import ZONE_RECLAIM_ACTIVE
from .state import (CFG, CUR_CLOCK, LRU_ANON, LRU_FILE, LRU_SLAB, NODE, PCP_ALLOC_FACTOR, VMSTAT,
                    ZS_BOOST, ZS_FLAGS, ZS_KSWAPD_BOOST)
from .watermark import (MAX_RECLAIM_RETRIES, balance_pgdat_boosts, kswapd_balance_begin,
                        kswapd_highest_zoneidx, pgdat_balanced, populated_zone, wakeup_kcompactd,
                        wmark_pages)

_CFG_SWAP = CFG["swap"]
_CFG_SLAB_PPM = CFG["slab_free_ppm"]
_CFG_RECLAIM = CFG["reclaim"]
_VM_PGSCAN_KSWAPD = VMSTAT["pgscan_kswapd"]
_VM_PGSCAN_DIRECT = VMSTAT["pgscan_direct"]
_VM_PGSTEAL_KSWAPD = VMSTAT["pgsteal_kswapd"]
_VM_PGSTEAL_DIRECT = VMSTAT["pgsteal_direct"]
_VM_SLABS_SCANNED = VMSTAT["slabs_scanned"]
_VM_PAGEOUTRUN = VMSTAT["pageoutrun"]
_N_KSWAPD_ORDER = NODE["kswapd_order"]
_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KSWAPD_FAILURES = NODE["kswapd_failures"]
_N_KSWAPD_RUNS = NODE["kswapd_runs"]
_N_DIRECT = NODE["direct_reclaims"]
_N_KSWAPD_RECLAIMED = NODE["kswapd_reclaimed"]
_N_KSWAPD_RECLAIM_ORDER = NODE["kswapd_reclaim_order"]
_N_KSWAPD_PGFREE = NODE["kswapd_pgfree"]
_CFG_RECLAIM_EXTERNAL = CFG["reclaim_external"]
_CFG_RA_EXTERNAL = CFG["reclaim_active_external"]
_CFG_KSWAPD_REPLAY_RUN_NS = CFG["kswapd_replay_run_ns"]
_N_KSWAPD_RUN_START = NODE["kswapd_run_start_ns"]
_N_KSWAPD_ALLOC_ORDER = NODE["kswapd_alloc_order"]
_N_KSWAPD_RUN_IDX = NODE["kswapd_run_zoneidx"]
_N_KSWAPD_NR_BOOST = NODE["kswapd_nr_boost_reclaim"]
_VM_PGFREE = VMSTAT["pgfree"]
_N_DIRECT_PGFREE = NODE["direct_pgfree"]

SWAP_CLUSTER_MAX = 32


@njit_inline
def next_random(m):
    """xorshift64* on the machine's generator state; returns a uint64."""
    x = m.rng[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    m.rng[0] = x
    return x * 2685821657736338717


@njit
def reclaim_block(m, pfn, lru, cpu):
    """Free one block taken off a reclaim list (pageout / shrinker)."""
    lru_del(m, pfn, lru)
    obj = m.pg_obj[pfn]
    if obj >= 0:
        m.obj_pfn[obj] = -1          # the owner's timer finds it gone
    elif obj < -1:
        m.pc_pfn[piece_index(obj)] = -1      # a piece of a split object (mm/split.py)
    order = m.pg_order[pfn]
    free_pages_call(m, pfn, order, cpu)
    return 1 << order


@njit
def shrink_lru(m, lru, nr_to_scan, cpu):
    """shrink_inactive_list(): scan from the tail; pinned blocks rotate to the head.
    Returns (scanned, reclaimed) in pages."""
    scanned = 0
    reclaimed = 0
    limit = m.lru_pages[lru]
    while scanned < nr_to_scan and scanned < limit:
        pfn = m.lru_tail[lru]
        if pfn < 0:
            break
        n = 1 << m.pg_order[pfn]
        scanned += n
        if m.pg_flags[pfn] & PG_pinned:
            lru_del(m, pfn, lru)
            lru_add(m, pfn, lru)
            continue
        reclaimed += reclaim_block(m, pfn, lru, cpu)
    return scanned, reclaimed


@njit
def shrink_slab(m, nr_to_scan, cpu):
    """shrink_slab(): scan reclaimable slab pages from the oldest; each is freed
    with probability slab_free_ppm/1e6 (all its objects were reclaimable),
    otherwise it rotates.  Returns (scanned, reclaimed) pages."""
    scanned = 0
    reclaimed = 0
    ppm = m.cfg[_CFG_SLAB_PPM]
    limit = m.lru_pages[LRU_SLAB]
    while scanned < nr_to_scan and scanned < limit:
        pfn = m.lru_tail[LRU_SLAB]
        if pfn < 0:
            break
        n = 1 << m.pg_order[pfn]
        scanned += n
        if (next_random(m) >> 11) % 1000000 < ppm:
            reclaimed += reclaim_block(m, pfn, LRU_SLAB, cpu)
        else:
            lru_del(m, pfn, LRU_SLAB)
            lru_add(m, pfn, LRU_SLAB)
    m.vm[_VM_SLABS_SCANNED] += scanned
    return scanned, reclaimed


@njit
def shrink_node(m, nr_to_reclaim, cpu, kswapd, may_swap):
    """shrink_node(): file LRU first, then anon (swap, unless ``may_swap`` is
    off: sc.may_swap, as in kswapd's boosted reclaim), then slab, until
    ``nr_to_reclaim`` pages are freed.  Returns pages reclaimed."""
    total_scanned = 0
    total = 0
    sc, rc = shrink_lru(m, LRU_FILE, nr_to_reclaim, cpu)
    total_scanned += sc
    total += rc
    if total < nr_to_reclaim and m.cfg[_CFG_SWAP] != 0 and may_swap:
        sc, rc = shrink_lru(m, LRU_ANON, nr_to_reclaim - total, cpu)
        total_scanned += sc
        total += rc
    if total < nr_to_reclaim:
        sc, rc = shrink_slab(m, 4 * (nr_to_reclaim - total), cpu)
        total += rc
    if kswapd:
        m.vm[_VM_PGSCAN_KSWAPD] += total_scanned
        m.vm[_VM_PGSTEAL_KSWAPD] += total
    else:
        m.vm[_VM_PGSCAN_DIRECT] += total_scanned
        m.vm[_VM_PGSTEAL_DIRECT] += total
    return total


@njit
def zone_reclaimable_pages(m):
    """zone_reclaimable_pages(), for the node: file (+ anon with swap)."""
    r = m.lru_pages[LRU_FILE]
    if m.cfg[_CFG_SWAP] != 0:
        r += m.lru_pages[LRU_ANON]
    return r


@njit_inline
def reclaim_free_alloc_factor(m, highest_zoneidx, cpu):
    """What the reclaimer's own frees do to its cpu's pcp lists, where the
    reclaim is a replay's stream: shrink_folio_list() frees what it reclaimed
    through free_unref_folios() on the reclaiming cpu, and every
    free_unref_page_commit() halves pcp->alloc_factor, so after
    SWAP_CLUSTER_MAX pages the retry refills one batch (nr_pcp_alloc).  The
    stream holds those frees where the kernel's reclaim ran, not where the
    simulated one does; which zone they came from it does not say, so every
    zone the request may use is reset [SIM]."""
    for z in range(highest_zoneidx + 1):
        if populated_zone(m, z):
            m.pcp[z, cpu, PCP_ALLOC_FACTOR] = 0


@njit
def try_to_free_pages(m, order, highest_zoneidx, cpu):
    """try_to_free_pages(): direct reclaim of at least SWAP_CLUSTER_MAX pages
    (twice compact_gap for costly orders so compaction has room); progress
    clears kswapd's failure count (shrink_node).  With ``reclaim_external``
    (a replay) the kernel's reclaim is in the request stream, which only
    shows a traced allocation after its reclaim freed pages: the pages the
    stream freed since the last direct reclaim count as this one's progress
    (so a failed retry drains every pcp list, as
    __alloc_pages_direct_reclaim does after progress) [SIM], and the
    progress resets this cpu's refill scaling (reclaim_free_alloc_factor)."""
    if m.cfg[_CFG_RECLAIM] == 0:
        return 0
    m.node[_N_DIRECT] += 1
    if m.cfg[_CFG_RECLAIM_EXTERNAL] != 0:
        freed = m.vm[_VM_PGFREE] - m.node[_N_DIRECT_PGFREE]
        m.node[_N_DIRECT_PGFREE] = m.vm[_VM_PGFREE]
        if freed > 0:
            m.node[_N_KSWAPD_FAILURES] = 0
            reclaim_free_alloc_factor(m, highest_zoneidx, cpu)
        return freed
    target = SWAP_CLUSTER_MAX
    if order > 3:
        target = max(target, 2 << order)
    got = shrink_node(m, target, cpu, False, True)
    if got > 0:
        m.node[_N_KSWAPD_FAILURES] = 0
    return got


@njit_inline
def update_reclaim_active(m, highest_zoneidx, active):
    """update_reclaim_active(): ZONE_RECLAIM_ACTIVE on or off for the
    populated zones up to ``highest_zoneidx`` (the pcp lists then keep at
    most 4 batches: nr_pcp_high)."""
    for z in range(highest_zoneidx + 1):
        if populated_zone(m, z):
            if active:
                m.zstat[z, ZS_FLAGS] |= ZONE_RECLAIM_ACTIVE
            else:
                m.zstat[z, ZS_FLAGS] &= ~ZONE_RECLAIM_ACTIVE


@njit
def set_reclaim_active(m, highest_zoneidx, on):
    """set_reclaim_active() / clear_reclaim_active(): kswapd's
    update_reclaim_active() for as long as balance_pgdat() runs.  Left alone
    with ``reclaim_active_external``: a replay then sets the flag while the
    recorded kswapd was reclaiming."""
    if m.cfg[_CFG_RA_EXTERNAL] != 0:
        return
    update_reclaim_active(m, highest_zoneidx, on)


@njit
def balance_pgdat_out(m, idx):
    """The end of every balance_pgdat() run (label ``out``): the zones leave
    ZONE_RECLAIM_ACTIVE; a run that began boosted subtracts from each zone
    the boost it had when the run began (zone_boosts[]: a boost raised
    since stays for the next run) and wakes kcompactd for pageblock_order
    (not in a replay that follows the recorded kswapd: that kswapd's
    wake-ups are the node's, spbsim.trace.kswapd_windows)."""
    set_reclaim_active(m, idx, False)
    boosted = False
    for z in range(m.zstat.shape[0]):
        b = m.zstat[z, ZS_KSWAPD_BOOST]
        if b > 0:
            boosted = True
            m.zstat[z, ZS_BOOST] -= min(m.zstat[z, ZS_BOOST], b)
            m.zstat[z, ZS_KSWAPD_BOOST] = 0
    m.node[_N_KSWAPD_NR_BOOST] = 0
    if boosted and m.cfg[_CFG_RA_EXTERNAL] == 0:
        wakeup_kcompactd(m, pageblock_order, idx)
    m.node[_N_KSWAPD_RUNS] += 1
    m.vm[_VM_PAGEOUTRUN] += 1


@njit_inline
def prepare_kswapd_sleep(m, order, highest_zoneidx):
    """prepare_kswapd_sleep(): kswapd may sleep on a hopeless node or one
    balanced at ``order``."""
    if m.node[_N_KSWAPD_FAILURES] >= MAX_RECLAIM_RETRIES:
        return True
    return pgdat_balanced(m, order, highest_zoneidx)


@njit_inline
def kswapd_try_to_sleep(m, alloc_order, reclaim_order, highest_zoneidx):
    """kswapd_try_to_sleep(): if prepare_kswapd_sleep() at ``reclaim_order``,
    clear the skip bits of zones asking for it, wake kcompactd for
    ``alloc_order`` and sleep; the HZ/10 nap before the full sleep is not
    modelled [SIM].  In a replay that follows the recorded kswapd
    (reclaim_active_external) the node has one kswapd, the recorded one,
    whose naps do both (spbsim.trace.kswapd_windows): the simulated kswapd,
    which only balances there, does neither.  Returns whether kswapd sleeps."""
    if not prepare_kswapd_sleep(m, reclaim_order, highest_zoneidx):
        return False
    if m.cfg[_CFG_RA_EXTERNAL] == 0:
        reset_isolation_suitable(m)
        wakeup_kcompactd(m, alloc_order, highest_zoneidx)
    m.node[_N_KSWAPD_WAIT] = 0
    trace_event(m, EV_KSWAPD_SLEEP, 0, 0, 0, 0, 0, 0)
    m.node[_N_KSWAPD_ALLOC_ORDER] = 0
    m.node[_N_KSWAPD_RECLAIM_ORDER] = 0
    m.node[_N_KSWAPD_RECLAIMED] = 0
    return True


@njit
def kswapd_run_done(m, alloc_order, reclaim_order, highest_zoneidx):
    """kswapd()'s loop once balance_pgdat() returned ``reclaim_order``: below
    ``alloc_order`` it tries to sleep with the run's orders; else with the
    order the node's kswapd_order gathered during the run (kcompactd is woken
    for that one).  If the node is not balanced at the order tried, kswapd
    does not sleep and begins another run for the gathered order."""
    if reclaim_order < alloc_order:
        slept = kswapd_try_to_sleep(m, alloc_order, reclaim_order, highest_zoneidx)
    else:
        order = m.node[_N_KSWAPD_ORDER]
        idx = kswapd_highest_zoneidx(m, highest_zoneidx)
        m.node[_N_KSWAPD_RUN_IDX] = idx
        slept = kswapd_try_to_sleep(m, order, order, idx)
    if not slept:
        kswapd_balance_begin(m)


@njit_inline
def balance_pgdat_boost_left(m, balanced, reclaimed):
    """balance_pgdat()'s nr_boost_reclaim after ``reclaimed`` pages: on an
    unbalanced node the boost is ignored (``goto restart``: plain reclaim to
    the marks, boosts still in place); else what is left to reclaim for it."""
    nr_boost = m.node[_N_KSWAPD_NR_BOOST]
    if not balanced:
        nr_boost = 0
    nr_boost -= min(nr_boost, reclaimed)
    m.node[_N_KSWAPD_NR_BOOST] = nr_boost
    return nr_boost


@njit
def balance_pgdat(m, cpu, budget):
    """kswapd's balance_pgdat() and kswapd_try_to_sleep(): reclaim until the
    node is balanced (a zone <= idx meets its HIGH mark incl. boost) at the
    order kswapd reclaims for, which drops to 0 once compact_gap(order) pages
    were reclaimed (kswapd_shrink_node), and, on a balanced node, until the
    boosts the run began with are reclaimed too (nr_boost_reclaim, without
    swapping); then kswapd_run_done.  At most
    ``budget`` pages per call (kswapd's throughput is the [SIM] parameter
    kswapd_rate); a run cut short stays awake.  A run that reclaims nothing
    (in all its calls) counts a kswapd failure; after MAX_RECLAIM_RETRIES of them in a row
    kswapd sleeps on an unbalanced node (prepare_kswapd_sleep).
    With ``reclaim_external`` (a replay, whose stream holds the real
    kernel's reclaim) kswapd reclaims nothing itself: the pages freed while
    it is awake count as its reclaim, and it stays awake until the node is
    balanced, ending a run (and so dropping the boosts it began with) every
    ``kswapd_replay_run_ns`` of trace time [SIM].  Returns pages reclaimed."""
    alloc_order = m.node[_N_KSWAPD_ALLOC_ORDER]
    order = m.node[_N_KSWAPD_RECLAIM_ORDER]
    idx = m.node[_N_KSWAPD_RUN_IDX]
    external = m.cfg[_CFG_RECLAIM_EXTERNAL] != 0
    set_reclaim_active(m, idx, True)
    per_round = 0
    for z in range(idx + 1):
        if populated_zone(m, z):
            per_round += max(wmark_pages(m, z, 2), SWAP_CLUSTER_MAX)
    reclaimed = 0
    if external:
        freed = m.vm[_VM_PGFREE] - m.node[_N_KSWAPD_PGFREE]
        m.node[_N_KSWAPD_PGFREE] = m.vm[_VM_PGFREE]
        m.node[_N_KSWAPD_RECLAIMED] += freed
        if order > 0 and m.node[_N_KSWAPD_RECLAIMED] >= (2 << order):
            order = 0
            m.node[_N_KSWAPD_RECLAIM_ORDER] = 0
        balanced = pgdat_balanced(m, order, idx)
        nr_boost = balance_pgdat_boost_left(m, balanced, freed)
        done = balanced and nr_boost == 0
        if done or m.cur[CUR_CLOCK] - m.node[_N_KSWAPD_RUN_START] \
                >= m.cfg[_CFG_KSWAPD_REPLAY_RUN_NS]:
            balance_pgdat_out(m, idx)
            m.node[_N_KSWAPD_RUN_START] = m.cur[CUR_CLOCK]
            if not done:
                balance_pgdat_boosts(m, idx)        # the next run begins
        if done:
            kswapd_run_done(m, alloc_order, order, idx)
        return 0
    while reclaimed < budget:
        balanced = pgdat_balanced(m, order, idx)
        nr_boost = balance_pgdat_boost_left(m, balanced, 0)
        if balanced and nr_boost == 0:
            break
        got = shrink_node(m, min(per_round, budget - reclaimed), cpu, True, nr_boost == 0)
        balance_pgdat_boost_left(m, True, got)
        reclaimed += got
        m.node[_N_KSWAPD_RECLAIMED] += got
        if order > 0 and m.node[_N_KSWAPD_RECLAIMED] >= (2 << order):
            order = 0
            m.node[_N_KSWAPD_RECLAIM_ORDER] = 0
        if got == 0:
            if m.node[_N_KSWAPD_RECLAIMED] == 0:      # the whole run reclaimed nothing
                m.node[_N_KSWAPD_FAILURES] += 1
            break
    else:
        return reclaimed            # the budget ran out first: stay awake
    if reclaimed > 0:
        m.node[_N_KSWAPD_FAILURES] = 0
    balance_pgdat_out(m, idx)
    kswapd_run_done(m, alloc_order, order, idx)
    return reclaimed
