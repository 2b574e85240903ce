"""Reclaim lists: LRU lists of allocated movable blocks (anon, file) and the
list of reclaimable slab pages, threaded through pg_next/pg_prev of the block
head as page->lru shares storage with page->buddy_list in struct page.

One FIFO per list (new blocks at the head, reclaim from the tail): the
active/inactive split and MGLRU generations are not modelled [SIM].
"""
from .jit import njit_inline

__all__ = ["lru_add", "lru_del", "lru_replace"]


@njit_inline
def lru_add(m, pfn, lru):
    """lruvec_add_folio(): at the head (most recently used)."""
    h = m.lru_head[lru]
    m.pg_next[pfn] = h
    m.pg_prev[pfn] = -1
    if h >= 0:
        m.pg_prev[h] = pfn
    else:
        m.lru_tail[lru] = pfn
    m.lru_head[lru] = pfn
    m.lru_pages[lru] += 1 << m.pg_order[pfn]


@njit_inline
def lru_del(m, pfn, lru):
    """lruvec_del_folio()."""
    p = m.pg_prev[pfn]
    n = m.pg_next[pfn]
    if p >= 0:
        m.pg_next[p] = n
    else:
        m.lru_head[lru] = n
    if n >= 0:
        m.pg_prev[n] = p
    else:
        m.lru_tail[lru] = p
    m.pg_next[pfn] = -1
    m.pg_prev[pfn] = -1
    m.lru_pages[lru] -= 1 << m.pg_order[pfn]


@njit_inline
def lru_replace(m, old, new, lru):
    """Migration: ``new`` takes ``old``'s place on the list (same order)."""
    p = m.pg_prev[old]
    n = m.pg_next[old]
    m.pg_prev[new] = p
    m.pg_next[new] = n
    if p >= 0:
        m.pg_next[p] = new
    else:
        m.lru_head[lru] = new
    if n >= 0:
        m.pg_prev[n] = new
    else:
        m.lru_tail[lru] = new
    m.pg_next[old] = -1
    m.pg_prev[old] = -1
