"""Reclaim lists: LRU lists of allocated movable blocks (anon, file) and the
list of reclaimable slab pages, threaded through pg_next/pg_prev of the block
head as page->lru shares storage with page->buddy_list in struct page.

One FIFO per list (new blocks at the head, reclaim from the tail): the
active/inactive split and MGLRU generations are not modelled [SIM].
"""
from .jit import njit_inline
from .list import list_add, list_del, list_replace

__all__ = ["lru_add", "lru_del", "lru_replace"]


@njit_inline
def lru_add(m, pfn, lru):
    """lruvec_add_folio(): at the head (most recently used)."""
    list_add(m.pg_next, m.pg_prev, m.lru_head, m.lru_tail, lru, pfn)
    m.lru_pages[lru] += 1 << m.pg_order[pfn]


@njit_inline
def lru_del(m, pfn, lru):
    """lruvec_del_folio()."""
    list_del(m.pg_next, m.pg_prev, m.lru_head, m.lru_tail, lru, pfn)
    m.lru_pages[lru] -= 1 << m.pg_order[pfn]


@njit_inline
def lru_replace(m, old, new, lru):
    """Migration: ``new`` takes ``old``'s place on the list (same order)."""
    list_replace(m.pg_next, m.pg_prev, m.lru_head, m.lru_tail, lru, old, new)
