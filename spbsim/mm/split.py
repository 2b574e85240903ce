"""Splitting an allocated large block into base pages, and the pieces of
timed objects that it leaves behind.

The kernel's ``migrate_pages()`` splits a large folio when no target of its
order can be allocated (``-ENOMEM`` in ``migrate_pages_batch()``, for every
migrate reason but ``MR_NUMA_MISPLACED``) and migrates the base pages one by
one instead.  Here only ``alloc_contig_range()`` (``MR_CONTIG_RANGE``) does
so; compaction and the SPB evacuation paths do not split (docs/model.md,
"Migration and the large-block split").
``split_isolated_block()`` mirrors ``split_huge_page_to_list_to_order(folio,
list, 0)`` for a block taken off its LRU (isolated): every base page becomes
an order-0 block with the same flags and owner, still isolated.

A block that belongs to a timed object of the engine keeps the object id on
its first page; every other base page becomes a *piece* of that object, with
an id of its own (``pg_obj = -2 - piece``), so that migration and reclaim
follow it exactly as they follow an object (``pc_pfn[piece]`` is its block,
-1 once reclaimed), and the object's expiry frees all of its pieces
(``free_object_pieces``).  Pieces come from a fixed pool (``pc_pfn`` /
``pc_next``, as long as the Machine's ``piece_capacity``); a split that would need more pieces than are
free is refused (counted in ``pc_n[2]``) and the migration fails as it did
before the split existed.  A block handed out through the API with no
reclaim list (movable only under ``migrate_untracked``) is never split: its
caller knows it by its first pfn and order, and would leak the rest.

Counters: ``sim_migrate_split`` counts every split; ``thp_split_page`` (and,
in contig.py, ``thp_migration_split``) only PMD-sized ones (order 9), as the
kernel counts large folios of other orders in the mTHP statistics instead.
"""
from .jit import njit, njit_inline
from .lru import lru_del
from .page_free import free_pages_call
from .const import pageblock_order
from .state import SIMSTAT, VMSTAT

__all__ = ["piece_index", "split_isolated_block", "free_object_pieces"]

_VM_THP_SPLIT_PAGE = VMSTAT["thp_split_page"]
_SIM_SPLIT = SIMSTAT["sim_migrate_split"]


@njit_inline
def piece_index(v):
    """pg_obj value <-> piece index (its own inverse): piece k is stored in
    pg_obj as -2 - k, so that -1 keeps meaning "no object"."""
    return -2 - v


@njit
def split_isolated_block(m, p):
    """Split the isolated (off-LRU) allocated block at ``p`` into order-0
    blocks.  Returns True, or False with nothing changed when the block is
    order 0 or its object's pieces cannot be had."""
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
    if o == pageblock_order:        # HPAGE_PMD_ORDER
        m.vm[_VM_THP_SPLIT_PAGE] += 1
    return True


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
