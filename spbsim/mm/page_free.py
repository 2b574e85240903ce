"""The free path (mm/page_alloc.c: __free_pages -> __free_frozen_pages ->
free_unref_page_commit / free_one_page)."""
from .buddy import pcp_allowed_order, split_large_buddy
from .const import (MAX_NR_ZONES, MIGRATE_ISOLATE, MIGRATE_MOVABLE,
                    MIGRATE_PCPTYPES, PG_buddy, PG_head, PG_pcp, PG_reserved,
                    ZONE_BELOW_HIGH, pageblock_order)
from .jit import njit, njit_inline
from .pcp import free_unref_page_commit
from .state import CFG, CUR_CPU, SIMSTAT, VM_PGFREE, ZS_FLAGS, ZS_NR_FREE
from .tracepoint import EV_FREE, trace_event
from .watermark import wmark_pages, zone_watermark_ok

_CFG_PCP = CFG["pcp_enabled"]
_CFG_PCPBUDDY = CFG["pcpbuddy"]
_SIM_FREE = SIMSTAT["sim_free_requests"]
_SIM_REMOTE = SIMSTAT["sim_pcp_remote_owner_frees"]

# free_pages() error codes, translated into exceptions by the Python layer
EFREE_RANGE = -1
EFREE_NOT_ALLOCATED = -2
EFREE_ORDER = -3


@njit_inline
def free_pages_check(m, pfn, order):
    """free_pages_prepare()'s sanity checks: 0 or an EFREE_* code."""
    if pfn < 0 or pfn >= m.pg_flags.shape[0]:
        return EFREE_RANGE
    f = m.pg_flags[pfn]
    if (f & PG_head) == 0 or (f & (PG_buddy | PG_pcp | PG_reserved)) != 0:
        return EFREE_NOT_ALLOCATED
    if m.pg_order[pfn] != order:
        return EFREE_ORDER
    return 0


@njit_inline
def free_pages(m, pfn, order, cpu):
    """__free_pages() -> __free_frozen_pages(): pcp for pcp orders, else
    free_one_page() -> split_large_buddy().  With PCPBuddy a page of an owned
    pageblock goes to the owner cpu's list, flagged PagePCPBuddy.  Returns 0
    or an EFREE_* code."""
    err = free_pages_check(m, pfn, order)
    if err != 0:
        return err
    m.cur[CUR_CPU] = cpu
    m.sim[_SIM_FREE] += 1
    trace_event(m, EV_FREE, pfn, order, 0, 0, 0, 0)
    m.vm[VM_PGFREE] += 1 << order
    m.owner_pages[m.pg_owner[pfn]] -= 1 << order
    m.pg_flags[pfn] = 0
    m.pg_owner[pfn] = 0
    m.pg_obj[pfn] = -1
    z = m.pb_zone[pfn >> pageblock_order]
    mt = m.pb_mt[pfn >> pageblock_order]
    if m.cfg[_CFG_PCP] != 0 and pcp_allowed_order(m, order) and mt != MIGRATE_ISOLATE:
        m.pg_list_mt[pfn] = mt      # set_pcppage_migratetype() (v6.1's drains read it)
        if mt >= MIGRATE_PCPTYPES:
            mt = MIGRATE_MOVABLE
        cache_cpu = cpu
        owned = False
        if m.cfg[_CFG_PCPBUDDY] != 0:
            owner = m.pb_cpu[pfn >> pageblock_order] - 1
            if owner >= 0:
                owned = True
                if owner != cpu:
                    cache_cpu = owner
                    m.sim[_SIM_REMOTE] += 1
        if free_unref_page_commit(m, z, cache_cpu, pfn, order, mt, owned):
            if (m.zstat[z, ZS_FLAGS] & ZONE_BELOW_HIGH) and zone_watermark_ok(
                    m, z, 0, wmark_pages(m, z, 2), MAX_NR_ZONES - 1, 0, m.zstat[z, ZS_NR_FREE]):
                m.zstat[z, ZS_FLAGS] &= ~ZONE_BELOW_HIGH
        return 0
    m.pg_order[pfn] = -1
    split_large_buddy(m, pfn, z, order, False)
    return 0




@njit
def free_pages_call(m, pfn, order, cpu):
    """free_pages() as a call, for cold callers (reclaim, migration): keeps the
    number of inlined copies, and so compile time, down."""
    return free_pages(m, pfn, order, cpu)
