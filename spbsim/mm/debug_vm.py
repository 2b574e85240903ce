"""A CONFIG_DEBUG_VM-style consistency check of the whole machine state.

``check_mem`` walks every free list and pcp list and then every pfn, and
returns the first violation as (code, pfn, detail_a, detail_b); code 0 means
consistent.  ``VIOLATIONS`` turns codes into messages.
"""

from .buddy import migratetype_to_has_bit
from .const import (KV_6_1, MAX_NR_ZONES, MAX_PAGE_ORDER, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE,
                    MIGRATE_MOVABLE, MIGRATE_PCPTYPES, MIGRATE_TYPES, NEVER_NS,
                    NR_LOWORDER_PCP_LISTS, NR_PAGE_ORDERS, NR_PCP_LISTS, PB_all_free, PB_has_mask,
                    PG_buddy, PG_head, PG_MT_SHIFT, PG_pcp, PG_pcpbuddy, PG_reserved,
                    pageblock_nr_pages, pageblock_order)
from .jit import njit
from .pcp import pcp_pindex_to_order, pcpbuddy_pair_order
from .split import piece_index
from .state import (CAPC_PAGE, CAPC_ZONE, CCR_ACTIVE, CCR_BUDGET_NS, CCR_CLOCK0, CCR_FAST_FAIL,
                    CCR_FPFN, CCR_LEN, CCR_MIGRATED, CCR_MPFN, CCR_SCANNED, CCR_SEARCH_ORDER,
                    CCR_SLOT_KCOMPACTD, CCR_SLOT_WRITE, CCR_WHOLE_ZONE, CCR_ZONE, CFG,
                    KCD_TASK_DO_WORK, KCD_TASK_NONE, KCD_TASK_PROACTIVE, NODE,
                    PCP_COUNT, ZS_FREE_HIGHATOMIC,
                    ZS_INIT_FREE_PFN, ZS_INIT_MIGRATE_PFN, ZS_KSWAPD_BOOST, ZS_MIGRATE_PFN_ASYNC,
                    ZS_MIGRATE_PFN_SYNC, ZS_NR_FREE, ZS_NR_FREE_BLOCKS)

__all__ = ["check_mem", "VIOLATIONS"]

_CFG_PREP_BIT = CFG["prep_sets_request_bit"]
_CFG_SPB = CFG["spb"]
_CFG_PCPBUDDY = CFG["pcpbuddy"]
_CFG_VERSION = CFG["version"]
_N_KSWAPD_ORDER = NODE["kswapd_order"]
_N_KSWAPD_IDX = NODE["kswapd_highest_zoneidx"]
_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KSWAPD_ALLOC_ORDER = NODE["kswapd_alloc_order"]
_N_KSWAPD_RECLAIM_ORDER = NODE["kswapd_reclaim_order"]
_N_KSWAPD_RUN_IDX = NODE["kswapd_run_zoneidx"]
_N_KSWAPD_NR_BOOST = NODE["kswapd_nr_boost_reclaim"]
_N_KCD_CLOCK = NODE["kcompactd_clock_ns"]
_N_KSWAPD_NEXT_WAKE = NODE["kswapd_next_wake_ns"]
_N_KCD_RUN_ORDER = NODE["kcompactd_run_order"]
_N_KCD_TASK = NODE["kcompactd_task"]
_N_KCD_TASK_ZONE = NODE["kcompactd_task_zone"]
_N_KCD_TASK_IDX = NODE["kcompactd_task_zoneidx"]
_N_KCD_TASK_SCORE = NODE["kcompactd_task_score"]
_CFG_CONCURRENT = CFG["kcompactd_concurrent"]

VIOLATIONS = {
    1: "free list entry is not a free buddy head of the list's order (zone {a}, order/type {b})",
    2: "free list entry is in another zone or on another owner's list (zone {a}, list owner {b})",
    3: "free list entry's pageblock type differs from the list's type (list type {a}, block type {b})",
    4: "free list links are broken (prev/next mismatch) (zone {a}, list {b})",
    5: "free list length differs from its count (counted {a}, recorded {b})",
    6: "free_area[order].nr_free differs from the sum of its lists (zone {a}, order {b})",
    7: "NR_FREE_PAGES differs from the pages on the free lists (counted {a}, recorded {b})",
    8: "nr_free_highatomic differs from pages on HIGHATOMIC lists (counted {a}, recorded {b})",
    9: "pcp list entry is not a pcp block head of the list's order (zone {a}, pindex {b})",
    10: "pcp count differs from the pages on its lists (counted {a}, recorded {b})",
    11: "block is not naturally aligned (order {a})",
    12: "page lies inside another block (overlap; block head {a})",
    13: "page is in no block: neither free, on a pcp list, allocated nor reserved",
    14: "two free buddies of order {a} below pageblock order were not merged (buddy {b})",
    15: "PB_all_free disagrees with the pageblock's contents (flag {a}, fully free {b})",
    16: "pageblock is fully free but still has PB_has_* bits ({a})",
    17: "pageblock holds pages but no PB_has_* bit",
    18: "allocated page's type has no PB_has_* bit in its pageblock (type {a}, bits {b})",
    19: "NR_FREE_PAGES_BLOCKS differs from free pages in >= pageblock_order buddies (counted {a}, recorded {b})",
    20: "block crosses its zone's end (order {a})",
    21: "reclaim list entry is not an allocated block of that list's owner (list {a})",
    22: "reclaim list length differs from its page count (counted {a}, recorded {b})",
    23: "object table and page disagree (object {a}, page's object {b})",
    24: "owner page counts differ from the allocated blocks (owner {a}, counted {b})",
    25: "pages flagged free in struct page differ from the free lists' pages (counted {a}, recorded {b})",
    26: "pages flagged pcp in struct page differ from the pcp counts (counted {a}, recorded {b})",
    27: "split-object piece table and page disagree (piece {a}, page's object {b})",
    28: "split-piece pool does not add up (free chain {a}, in use {b})",
    29: "a compaction capture is left published or unclaimed outside direct compaction (zone {a}, page {b})",
    30: "PagePCPBuddy entry on a cpu's list that does not own its pageblock (cpu {a}, owner + 1 {b})",
    31: "owned_blocks list is broken or holds a block another cpu owns (zone {a}, cpu {b})",
    32: "a pageblock whole in the buddy (order >= pageblock_order) still has an owner (owner + 1 {a})",
    33: "PagePCPBuddy without PCPBuddy, or on a page not on a pcp list (flags {a})",
    34: "a pageblock whole in the buddy is still marked polluted in the taint log (by owner {a})",
    35: "taint log count outside its capacity (records {a}, capacity {b})",
    36: "pcp_pairs differs from the pairs of PagePCPBuddy buddies of one order on a cpu's lists (counted {a}, recorded {b})",
    37: "kswapd's node state is out of range: an order above MAX_PAGE_ORDER, a run reclaiming above "
        "its alloc order or a sleeping kswapd with a run order, or a zone index past the zones "
        "(node field {a}, value {b})",
    38: "kswapd's boost accounting is off: a run's zone_boosts[] below 0 or kept while kswapd "
        "sleeps, or nr_boost_reclaim outside 0..their sum (zone, -1 for nr_boost_reclaim, {a}; "
        "value {b})",
    39: "compaction state out of range: isolated free pages or a cpu schedule (cc_cpus) left "
        "outside a compaction, a zone's compact_init_free_pfn or compact_init_migrate_pfn "
        "outside the zone (0 before any reset), or a cached migrate pfn outside the zone and "
        "the two blocks after it (0 before any compaction) (zone, -1 for the isolated list, -2 "
        "for the cpu schedule, {a}; value {b})",
    40: "kcompactd's clock or the recorded kswapd's next wake is out of range (negative or "
        "past NEVER_NS), or its run's order is (node field {a}, value {b})",
    41: "free list entry's recorded list type (pg_list_mt) is not the list's (list type {a}, "
        "recorded {b})",
    42: "v6.1 pcp entry's recorded type (get_pcppage_migratetype) does not fit its list "
        "(pindex {a}, recorded {b})",
    43: "a paused compaction (cc_resume) is out of range: a zone that is not populated, scanners "
        "outside it or past each other (the migrate scanner off a pageblock's start), negative "
        "counts, a search order, budget, start clock or whole_zone flag out of range, or "
        "fields left set with none paused (row {a} // 16, field {a} % 16, value {b})",
    44: "kcompactd's run (kcompactd_task) is out of range: an unknown kind, its zone, zone "
        "index out of range, fields left set with no run, a run left between requests "
        "without kcompactd_concurrent, or a paused kcompactd compaction with no run or in "
        "another zone than the run's (node field {a}, value {b})",
}


@njit
def _check_lists(m):
    nz = MAX_NR_ZONES
    v61 = m.cfg[_CFG_VERSION] == KV_6_1
    npfn = m.pg_flags.shape[0]
    for z in range(nz):
        free_total = 0
        free_ha = 0
        free_blocks = 0
        nspb = m.spb.zone_count[z] if m.spb.zone_count.shape[0] > z else 0
        for o in range(NR_PAGE_ORDERS):
            tot = 0
            for mt in range(MIGRATE_TYPES):
                zone_n = 0
                # the zone's own list, then (per-SPB free lists) each SPB's
                for k in range(nspb + 1):
                    L = z if k == 0 else MAX_NR_ZONES + m.spb.zone_first[z] + k - 1
                    n = 0
                    prev = -1
                    p = m.fa_head[L, o, mt]
                    while p >= 0:
                        if n > npfn:
                            return 4, p, z, o * 16 + mt
                        if (m.pg_flags[p] & PG_buddy) == 0 or m.pg_order[p] != o:
                            return 1, p, z, o * 16 + mt
                        if m.pb_zone[p >> pageblock_order] != z or m.pb_list[p >> pageblock_order] != L:
                            return 2, p, z, L
                        if m.pg_list_mt[p] != mt:
                            return 41, p, mt, m.pg_list_mt[p]
                        # v6.1 keeps free pages on other types' lists (steal_suitable_fallback()
                        # moves a block's free pages without claiming it, a pcp drain goes to
                        # the type the page entered with, merges do not retype the buddy)
                        for b in range(0 if v61 else 1 << max(o - pageblock_order, 0)):
                            if m.pb_mt[(p >> pageblock_order) + b] != mt:
                                return 3, p + (b << pageblock_order), mt, \
                                    m.pb_mt[(p >> pageblock_order) + b]
                        if m.pg_prev[p] != prev:
                            return 4, p, z, o * 16 + mt
                        prev = p
                        p = m.pg_next[p]
                        n += 1
                    if m.fa_tail[L, o, mt] != prev:
                        return 4, prev, z, o * 16 + mt
                    if n != m.fl_nr[L, o, mt]:
                        return 5, -1, n, m.fl_nr[L, o, mt]
                    zone_n += n
                n = zone_n
                if n != m.fa_nr[z, o, mt]:
                    return 5, -1, n, m.fa_nr[z, o, mt]
                tot += n
                if mt != MIGRATE_ISOLATE:
                    free_total += n << o
                    if o >= pageblock_order:
                        free_blocks += n << o
                if mt == MIGRATE_HIGHATOMIC:
                    free_ha += n << o
            if tot != m.nr_free[z, o]:
                return 6, -1, z, o
        if free_total != m.zstat[z, ZS_NR_FREE]:
            return 7, -1, free_total, m.zstat[z, ZS_NR_FREE]
        if free_ha != m.zstat[z, ZS_FREE_HIGHATOMIC]:
            return 8, -1, free_ha, m.zstat[z, ZS_FREE_HIGHATOMIC]
        if free_blocks != m.zstat[z, ZS_NR_FREE_BLOCKS]:
            return 19, -1, free_blocks, m.zstat[z, ZS_NR_FREE_BLOCKS]
        for cpu in range(m.pcp.shape[1]):
            cnt = 0
            for pi in range(NR_PCP_LISTS):
                o = pcp_pindex_to_order(m, pi)
                p = m.pcp_head[z, cpu, pi]
                prev = -1
                steps = 0
                while p >= 0:
                    steps += 1
                    if steps > npfn:
                        return 9, p, z, pi
                    if (m.pg_flags[p] & PG_pcp) == 0 or m.pg_order[p] != o \
                            or m.pb_zone[p >> pageblock_order] != z or m.pg_prev[p] != prev:
                        return 9, p, z, pi
                    if (m.pg_flags[p] & PG_pcpbuddy) and m.pb_cpu[p >> pageblock_order] != cpu + 1:
                        return 30, p, cpu, m.pb_cpu[p >> pageblock_order]
                    if v61 and pi < NR_LOWORDER_PCP_LISTS:
                        rmt = m.pg_list_mt[p]
                        if rmt != pi % MIGRATE_PCPTYPES and not (
                                rmt == MIGRATE_HIGHATOMIC and pi % MIGRATE_PCPTYPES == MIGRATE_MOVABLE):
                            return 42, p, pi, rmt
                    cnt += 1 << o
                    prev = p
                    p = m.pg_next[p]
            if cnt != m.pcp[z, cpu, PCP_COUNT]:
                return 10, -1, cnt, m.pcp[z, cpu, PCP_COUNT]
            # PCPBuddy: pcp->owned_blocks holds blocks this cpu owns, in this zone
            b = m.pcp_own_head[z, cpu]
            prev = -1
            steps = 0
            while b >= 0:
                steps += 1
                if steps > m.pb_cpu.shape[0] or m.pb_own_prev[b] != prev \
                        or m.pb_cpu[b] != cpu + 1 or m.pb_zone[b] != z:
                    return 31, b << pageblock_order, z, cpu
                prev = b
                b = m.pb_own_next[b]
            if m.pcp_own_tail[z, cpu] != prev:
                return 31, -1, z, cpu
            # PCPBuddy: pcp_pairs counts the pairs of PagePCPBuddy buddies per order
            for o in range(pageblock_order):
                pairs = 0
                for pi in range(MIGRATE_PCPTYPES * o, MIGRATE_PCPTYPES * (o + 1)):
                    p = m.pcp_head[z, cpu, pi]
                    while p >= 0:
                        # each pair once, from its lower half
                        if (m.pg_flags[p] & PG_pcpbuddy) and (p ^ (1 << o)) > p \
                                and pcpbuddy_pair_order(m, p) == o:
                            pairs += 1
                        p = m.pg_next[p]
                if pairs != m.pcp_pairs[z, cpu, o]:
                    return 36, -1, pairs, m.pcp_pairs[z, cpu, o]
    return 0, -1, 0, 0


@njit
def _check_pages(m):
    npfn = m.pg_flags.shape[0]
    nz = MAX_NR_ZONES
    for z in range(nz):
        start = m.zone_start[z]
        end = m.zone_end[z]
        p = start
        buddy_pages = 0
        pcp_pages = 0
        while p < end:
            pb = p >> pageblock_order
            if m.pb_zone[pb] != z:
                p = (pb + 1) << pageblock_order
                continue
            f = m.pg_flags[p]
            if (f & PG_pcpbuddy) and ((f & PG_pcp) == 0 or m.cfg[_CFG_PCPBUDDY] == 0):
                if (f & PG_head) == 0:
                    return 33, p, f, 0
            if f & (PG_buddy | PG_pcp | PG_head):
                o = m.pg_order[p]
                if o < 0 or (p & ((1 << o) - 1)) != 0:
                    return 11, p, o, 0
                if f & PG_buddy:
                    buddy_pages += 1 << o
                if f & PG_pcp:
                    pcp_pages += 1 << o
                if p + (1 << o) > end:
                    return 20, p, o, 0
                for q in range(p + 1, p + (1 << o)):
                    if m.pg_flags[q] != 0:
                        return 12, q, p, 0
                if (f & PG_buddy) and o < pageblock_order:
                    b = p ^ (1 << o)
                    if b < npfn and m.pb_zone[b >> pageblock_order] == z \
                            and (m.pg_flags[b] & PG_buddy) and m.pg_order[b] == o:
                        return 14, p, o, b
                if f & PG_head:
                    if m.pg_obj[p] >= 0 and m.obj_pfn[m.pg_obj[p]] != p:
                        return 23, p, m.pg_obj[p], m.obj_pfn[m.pg_obj[p]]
                    if m.pg_obj[p] < -1 and m.pc_pfn[piece_index(m.pg_obj[p])] != p:
                        k = piece_index(m.pg_obj[p])
                        return 27, p, k, m.pc_pfn[k]
                    mt = (f >> PG_MT_SHIFT) & 3
                    bit = migratetype_to_has_bit(mt)
                    if (m.pb_flags[pb] & bit) == 0 and m.cfg[_CFG_PREP_BIT] != 0:
                        return 18, p, mt, m.pb_flags[pb]
                p += 1 << o
            elif f & PG_reserved:
                p += 1
            else:
                return 13, p, 0, 0
        # every page flagged free is on a list, and only those (a block freed
        # twice, or a list entry overwritten, shows here)
        listed = 0
        for o in range(NR_PAGE_ORDERS):
            listed += m.nr_free[z, o] << o
        if buddy_pages != listed:
            return 25, -1, buddy_pages, listed
        listed = 0
        for cpu in range(m.pcp.shape[1]):
            listed += m.pcp[z, cpu, PCP_COUNT]
        if pcp_pages != listed:
            return 26, -1, pcp_pages, listed
        # pageblock content bits
        for pb in range(start >> pageblock_order, (end + pageblock_nr_pages - 1) >> pageblock_order):
            if m.pb_zone[pb] != z:
                continue
            s = pb << pageblock_order
            fully = False
            # a fully free block is inside one free buddy of order >= pageblock_order
            for o in range(pageblock_order, NR_PAGE_ORDERS):
                h = s & ~((1 << o) - 1)
                if h >= start and (m.pg_flags[h] & PG_buddy) and m.pg_order[h] == o:
                    fully = True
                    break
            if fully and m.pb_cpu[pb] != 0:
                return 32, s, m.pb_cpu[pb], 0
            if fully and m.pb_taint[pb] != 0:
                return 34, s, m.pb_taint[pb] - 1, 0
            flag = (m.pb_flags[pb] & PB_all_free) != 0
            # S1's claim_whole_block marks every pageblock of the claimed chunk
            # used, also the ones expand() puts back free: under SPBs a fully
            # free block may lack PB_all_free and keep its PB_has bit (S1 §3.2)
            stale_ok = m.cfg[_CFG_SPB] != 0
            if flag != fully and not (stale_ok and fully):
                return 15, s, 1 if flag else 0, 1 if fully else 0
            if fully and flag and (m.pb_flags[pb] & PB_has_mask) != 0:
                return 16, s, m.pb_flags[pb], 0
            if fully and not stale_ok and (m.pb_flags[pb] & PB_has_mask) != 0:
                return 16, s, m.pb_flags[pb], 0
            # (with S1's bit rules, prep_sets_request_bit off, a block can hold
            # pages whose type bit is stale or absent: S1 §6.6, design note 4)
            if not fully and (m.pb_flags[pb] & PB_has_mask) == 0 and m.cfg[_CFG_PREP_BIT] != 0:
                return 17, s, 0, 0
    return 0, -1, 0, 0


@njit
def _check_owners(m):
    npfn = m.pg_flags.shape[0]
    for lru in range(m.lru_head.shape[0]):
        p = m.lru_head[lru]
        prev = -1
        pages = 0
        steps = 0
        while p >= 0:
            steps += 1
            if steps > npfn or m.pg_prev[p] != prev or (m.pg_flags[p] & PG_head) == 0 \
                    or m.owner_lru[m.pg_owner[p]] != lru:
                return 21, p, lru, 0
            pages += 1 << m.pg_order[p]
            prev = p
            p = m.pg_next[p]
        if m.lru_tail[lru] != prev or pages != m.lru_pages[lru]:
            return 22, -1, pages, m.lru_pages[lru]
    for oid in range(m.obj_pfn.shape[0]):
        p = m.obj_pfn[oid]
        if p >= 0 and (m.pg_obj[p] != oid or (m.pg_flags[p] & PG_head) == 0):
            return 23, p, oid, m.pg_obj[p]
    for pid in range(m.pc_pfn.shape[0]):
        p = m.pc_pfn[pid]
        if p >= 0 and (m.pg_obj[p] != piece_index(pid) or (m.pg_flags[p] & PG_head) == 0
                       or m.pg_order[p] != 0):
            return 27, p, pid, m.pg_obj[p]
    # every piece is either on the free chain or on one object's chain
    cap = m.pc_pfn.shape[0]
    nfree = 0
    pid = m.pc_n[0]
    while pid >= 0 and nfree <= cap:
        if m.pc_pfn[pid] >= 0:
            return 28, m.pc_pfn[pid], nfree, m.pc_n[1]
        nfree += 1
        pid = m.pc_next[pid]
    used = 0
    for oid in range(m.obj_pc.shape[0]):
        pid = m.obj_pc[oid]
        while pid >= 0 and used <= cap:
            used += 1
            pid = m.pc_next[pid]
    if nfree + m.pc_n[1] != cap or used != m.pc_n[1]:
        return 28, -1, nfree, used
    return 0, -1, 0, 0


@njit
def _check_kswapd(m):
    """kswapd's pglist_data fields (kswapd_order, kswapd_highest_zoneidx) and
    its current run (alloc/reclaim order, zone index, the boosts it began
    with and the boost left to reclaim)."""
    order = m.node[_N_KSWAPD_ORDER]
    if order < 0 or order > MAX_PAGE_ORDER:
        return (37, -1, _N_KSWAPD_ORDER, order)
    idx = m.node[_N_KSWAPD_IDX]
    if idx < 0 or idx > MAX_NR_ZONES:
        return (37, -1, _N_KSWAPD_IDX, idx)
    run_idx = m.node[_N_KSWAPD_RUN_IDX]
    if run_idx < 0 or run_idx >= MAX_NR_ZONES:
        return (37, -1, _N_KSWAPD_RUN_IDX, run_idx)
    alloc = m.node[_N_KSWAPD_ALLOC_ORDER]
    reclaim = m.node[_N_KSWAPD_RECLAIM_ORDER]
    if alloc < 0 or alloc > MAX_PAGE_ORDER or (m.node[_N_KSWAPD_WAIT] == 0 and alloc != 0):
        return (37, -1, _N_KSWAPD_ALLOC_ORDER, alloc)
    if reclaim < 0 or reclaim > alloc:
        return (37, -1, _N_KSWAPD_RECLAIM_ORDER, reclaim)
    total = 0
    for z in range(m.zstat.shape[0]):
        b = m.zstat[z, ZS_KSWAPD_BOOST]
        if b < 0 or (m.node[_N_KSWAPD_WAIT] == 0 and b != 0):
            return (38, -1, z, b)
        total += b
    nr_boost = m.node[_N_KSWAPD_NR_BOOST]
    if nr_boost < 0 or nr_boost > total:
        return (38, -1, -1, nr_boost)
    return (0, -1, 0, 0)


@njit
def _check_paused_compaction(m):
    """cc_resume, each row (a compact_memory write's, kcompactd's): all 0
    with no compaction paused; a paused one's zone is populated, its
    scanners are pfns of the zone (the migrate scanner's at a pageblock's
    start) in blocks that have not met, its counts not negative, its search
    order -1 to MAX_PAGE_ORDER, its budget -1 or more, its start clock 0 to
    kcompactd's clock (kcompactd's row), its whole_zone 0 or 1."""
    for slot in (CCR_SLOT_WRITE, CCR_SLOT_KCOMPACTD):
        r = m.cc_resume[slot]
        a = slot * 16
        if r[CCR_ACTIVE] == 0:
            for f in range(CCR_LEN):
                if r[f] != 0:
                    return (43, -1, a + f, r[f])
            continue
        if r[CCR_ACTIVE] != 1:
            return (43, -1, a + CCR_ACTIVE, r[CCR_ACTIVE])
        z = r[CCR_ZONE]
        if z < 0 or z >= m.zstat.shape[0] or m.zone_end[z] <= m.zone_start[z]:
            return (43, -1, a + CCR_ZONE, z)
        zs = m.zone_start[z] & ~(pageblock_nr_pages - 1)
        for f in (CCR_MPFN, CCR_FPFN):
            if r[f] < zs or r[f] >= m.zone_end[z]:
                return (43, -1, a + f, r[f])
        if (r[CCR_MPFN] & (pageblock_nr_pages - 1)) != 0:
            return (43, -1, a + CCR_MPFN, r[CCR_MPFN])
        if (r[CCR_FPFN] >> pageblock_order) <= (r[CCR_MPFN] >> pageblock_order):
            return (43, -1, a + CCR_FPFN, r[CCR_FPFN])
        for f in (CCR_FAST_FAIL, CCR_MIGRATED, CCR_SCANNED, CCR_CLOCK0):
            if r[f] < 0:
                return (43, -1, a + f, r[f])
        if r[CCR_SEARCH_ORDER] < -1 or r[CCR_SEARCH_ORDER] > MAX_PAGE_ORDER:  # -1: compact_node's
            return (43, -1, a + CCR_SEARCH_ORDER, r[CCR_SEARCH_ORDER])
        if r[CCR_BUDGET_NS] < -1:
            return (43, -1, a + CCR_BUDGET_NS, r[CCR_BUDGET_NS])
        if r[CCR_WHOLE_ZONE] != 0 and r[CCR_WHOLE_ZONE] != 1:
            return (43, -1, a + CCR_WHOLE_ZONE, r[CCR_WHOLE_ZONE])
        if slot == CCR_SLOT_KCOMPACTD and r[CCR_CLOCK0] > m.node[_N_KCD_CLOCK]:
            return (43, -1, a + CCR_CLOCK0, r[CCR_CLOCK0])
    return (0, -1, 0, 0)


@njit
def _check_kcompactd_task(m):
    """kcompactd's run in progress: none (its fields 0, kcompactd's cc_resume
    row idle), or a kcompactd_do_work() run (zone index a zone of the node,
    zone up to it) or a proactive one (a zone of the node); a run is left
    between requests only with kcompactd_concurrent, and a paused
    kcompactd compaction is its run's zone's."""
    task = m.node[_N_KCD_TASK]
    nz = m.zstat.shape[0]
    paused = m.cc_resume[CCR_SLOT_KCOMPACTD, CCR_ACTIVE] != 0
    if task == KCD_TASK_NONE:
        for f in (_N_KCD_TASK_ZONE, _N_KCD_TASK_IDX, _N_KCD_TASK_SCORE):
            if m.node[f] != 0:
                return (44, -1, f, m.node[f])
        if paused:
            return (44, -1, _N_KCD_TASK, task)
        return (0, -1, 0, 0)
    if task != KCD_TASK_DO_WORK and task != KCD_TASK_PROACTIVE:
        return (44, -1, _N_KCD_TASK, task)
    if m.cfg[_CFG_CONCURRENT] == 0:
        return (44, -1, _N_KCD_TASK, task)
    idx = m.node[_N_KCD_TASK_IDX]
    if task == KCD_TASK_DO_WORK and (idx < 0 or idx >= nz):
        return (44, -1, _N_KCD_TASK_IDX, idx)
    top = idx if task == KCD_TASK_DO_WORK else nz - 1
    z = m.node[_N_KCD_TASK_ZONE]
    if z < 0 or z > top:
        return (44, -1, _N_KCD_TASK_ZONE, z)
    if paused and m.cc_resume[CCR_SLOT_KCOMPACTD, CCR_ZONE] != z:
        return (44, -1, _N_KCD_TASK_ZONE, z)
    if m.node[_N_KCD_TASK_SCORE] < 0:
        return (44, -1, _N_KCD_TASK_SCORE, m.node[_N_KCD_TASK_SCORE])
    return (0, -1, 0, 0)


@njit
def _check_compaction(m):
    """compact_control's isolated list and cpu schedule are empty between
    compactions; compact_init_free_pfn and compact_init_migrate_pfn are 0
    or a pfn of their zone; the cached migrate pfns (update_cached_migrate()
    rounds up past a block's end) are 0 or between the zone start and two
    blocks past its last."""
    if m.cc_n[0] != 0:
        return (39, -1, -1, m.cc_n[0])
    if m.cc_n[1] != 0:                  # a compaction's cpu schedule, left set
        return (39, -1, -2, m.cc_n[1])
    r = _check_paused_compaction(m)
    if r[0] != 0:
        return r
    r = _check_kcompactd_task(m)
    if r[0] != 0:
        return r
    for z in range(m.zstat.shape[0]):
        zs, ze = m.zone_start[z], m.zone_end[z]
        for f in (ZS_INIT_FREE_PFN, ZS_INIT_MIGRATE_PFN):
            v = m.zstat[z, f]
            if v != 0 and (v < zs or v >= ze):
                return (39, -1, z, v)
        top = (((ze + pageblock_nr_pages - 1) >> pageblock_order) + 1) << pageblock_order
        for f in (ZS_MIGRATE_PFN_ASYNC, ZS_MIGRATE_PFN_SYNC):
            v = m.zstat[z, f]
            if v != 0 and (v < zs or v > top):
                return (39, -1, z, v)
    return (0, -1, 0, 0)


@njit
def _check_kcompactd(m):
    """kcompactd's clock (where its run got to in time, kcompactd_cost_ns)
    and the recorded kswapd's next wake are times, 0 to NEVER_NS; its run's
    order is an order (0 for a proactive run)."""
    for f in (_N_KCD_CLOCK, _N_KSWAPD_NEXT_WAKE):
        if m.node[f] < 0 or m.node[f] > NEVER_NS:
            return (40, -1, f, m.node[f])
    if m.node[_N_KCD_RUN_ORDER] < 0 or m.node[_N_KCD_RUN_ORDER] > MAX_PAGE_ORDER:
        return (40, -1, _N_KCD_RUN_ORDER, m.node[_N_KCD_RUN_ORDER])
    return (0, -1, 0, 0)


@njit
def check_mem(m):
    """Run all checks; (0, -1, 0, 0) if the state is consistent."""
    if m.capc[CAPC_ZONE] != -1 or m.capc[CAPC_PAGE] != -1:
        return (29, -1, m.capc[CAPC_ZONE], m.capc[CAPC_PAGE])
    if m.tl_n[0] < 0 or m.tl_n[0] > m.tl.shape[0] or m.tl_n[1] < 0:
        return (35, -1, m.tl_n[0], m.tl.shape[0])
    r = _check_kswapd(m)
    if r[0] != 0:
        return r
    r = _check_compaction(m)
    if r[0] != 0:
        return r
    r = _check_kcompactd(m)
    if r[0] != 0:
        return r
    r = _check_lists(m)
    if r[0] != 0:
        return r
    r = _check_pages(m)
    if r[0] != 0:
        return r
    return _check_owners(m)
