"""Splitting an allocated large block into base pages, and the pieces of
timed objects that it leaves behind.

Details: docs/model.md ("Module notes", `spbsim.mm.split`).
"""
from .jit import njit, njit_inline
from .lru import lru_add, lru_del
from .page_free import free_pages_call
from .const import PG_lru, pageblock_order
from .state import SIMSTAT, VMSTAT

__all__ = ["piece_index", "split_isolated_block", "split_lru_block", "free_object_pieces"]

_VM_THP_SPLIT_PAGE = VMSTAT["thp_split_page"]
_VM_THP_MIGRATION_SPLIT = VMSTAT["thp_migration_split"]
_SIM_SPLIT = SIMSTAT["sim_migrate_split"]


@njit_inline
def piece_index(v):
    """pg_obj value <-> piece index (its own inverse): piece k is stored in
    pg_obj as -2 - k, so that -1 keeps meaning "no object"."""
    return -2 - v


@njit
def split_isolated_block(m, p):
    """Split the isolated (off-LRU) allocated block at ``p`` into order-0
    blocks for migrate_pages() (thp_split_page and thp_migration_split
    count a PMD-sized one).  Returns True, or False with nothing changed
    when the block is order 0 or its object's pieces cannot be had."""
    o = m.pg_order[p]
    if o <= 0:
        return False
    n = 1 << o
    oid = m.pg_obj[p]
    if oid == -1 and m.owner_lru[m.pg_owner[p]] < 0:
        return False                # an API block: its caller holds (pfn, order)
    if oid >= 0 and m.pc_pfn.shape[0] - m.pc_n[1] < n - 1:
        m.pc_n[2] += 1
        return False
    f = m.pg_flags[p]
    owner = m.pg_owner[p]
    m.pg_order[p] = 0
    for q in range(p + 1, p + n):
        m.pg_flags[q] = f
        m.pg_order[q] = 0
        m.pg_owner[q] = owner
        m.pg_next[q] = -1
        m.pg_prev[q] = -1
        if oid >= 0:
            pid = m.pc_n[0]
            m.pc_n[0] = m.pc_next[pid]
            m.pc_pfn[pid] = q
            m.pc_next[pid] = m.obj_pc[oid]
            m.obj_pc[oid] = pid
            m.pc_n[1] += 1
            m.pg_obj[q] = piece_index(pid)
        else:
            m.pg_obj[q] = -1
    m.sim[_SIM_SPLIT] += 1
    if o == pageblock_order:        # HPAGE_PMD_ORDER; every caller splits for migrate_pages()
        m.vm[_VM_THP_SPLIT_PAGE] += 1
        m.vm[_VM_THP_MIGRATION_SPLIT] += 1
    return True


@njit
def split_lru_block(m, p):
    """migrate_pages_batch() on -ENOMEM for a large folio (every reason but
    MR_NUMA_MISPLACED: compaction, SPB evacuation): try_split_folio() takes
    the block off its LRU, splits it into base pages and puts each back, so
    the caller migrates them one by one.  Returns True, or False with the
    block unchanged."""
    o = m.pg_order[p]
    lru = m.owner_lru[m.pg_owner[p]]
    if lru >= 0:
        lru_del(m, p, lru)
    m.pg_flags[p] &= 0xFF ^ PG_lru
    ok = split_isolated_block(m, p)
    n = (1 << o) if ok else 1
    for k in range(n):
        q = p + n - 1 - k           # to the LRU head, base page p first in line
        m.pg_flags[q] |= PG_lru
        if lru >= 0:
            lru_add(m, q, lru)
    return ok


@njit
def free_object_pieces(m, oid, cpu):
    """The object ``oid`` ends: free every piece still allocated (off its
    reclaim list first) and return the pieces to the pool.  Returns pages freed."""
    freed = 0
    pid = m.obj_pc[oid]
    while pid >= 0:
        nxt = m.pc_next[pid]
        q = m.pc_pfn[pid]
        if q >= 0:
            o = m.pg_order[q]
            lru = m.owner_lru[m.pg_owner[q]]
            if lru >= 0:
                lru_del(m, q, lru)
            free_pages_call(m, q, o, cpu)
            freed += 1 << o
            m.pc_pfn[pid] = -1
        m.pc_next[pid] = m.pc_n[0]
        m.pc_n[0] = pid
        m.pc_n[1] -= 1
        pid = nxt
    m.obj_pc[oid] = -1
    return freed
