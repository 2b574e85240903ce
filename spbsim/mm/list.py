"""Intrusive doubly linked lists (include/linux/list.h), as index arrays.

Entries are array indices; ``nxt``/``prv`` hold each entry's neighbours (-1
ends a list), ``head``/``tail`` each list's ends, indexed by the list's key
``h`` (an integer or a tuple such as (zone, order, migratetype)).  The buddy
free lists, the pcp lists, the LRU lists and the SPB lists all use these."""
from .jit import njit_inline

__all__ = ["list_add", "list_add_tail", "list_del", "list_replace", "list_rotate_to_front"]


@njit_inline
def list_add(nxt, prv, head, tail, h, i):
    """list_add(): ``i`` at the head of list ``h``."""
    f = head[h]
    nxt[i] = f
    prv[i] = -1
    if f >= 0:
        prv[f] = i
    else:
        tail[h] = i
    head[h] = i


@njit_inline
def list_add_tail(nxt, prv, head, tail, h, i):
    """list_add_tail(): ``i`` at the tail of list ``h``."""
    t = tail[h]
    prv[i] = t
    nxt[i] = -1
    if t >= 0:
        nxt[t] = i
    else:
        head[h] = i
    tail[h] = i


@njit_inline
def list_del(nxt, prv, head, tail, h, i):
    """list_del() of ``i`` from list ``h``; its own links become -1."""
    p = prv[i]
    n = nxt[i]
    if p >= 0:
        nxt[p] = n
    else:
        head[h] = n
    if n >= 0:
        prv[n] = p
    else:
        tail[h] = p
    nxt[i] = -1
    prv[i] = -1


@njit_inline
def list_replace(nxt, prv, head, tail, h, old, new):
    """list_replace(): ``new`` takes ``old``'s place in list ``h``."""
    p = prv[old]
    n = nxt[old]
    prv[new] = p
    nxt[new] = n
    if p >= 0:
        nxt[p] = new
    else:
        head[h] = new
    if n >= 0:
        prv[n] = new
    else:
        tail[h] = new
    nxt[old] = -1
    prv[old] = -1


@njit_inline
def list_rotate_to_front(nxt, prv, head, tail, h, i):
    """list_rotate_to_front(): rotate list ``h`` so that ``i`` is its first
    entry (the entries before ``i`` move, in order, behind the old tail), as
    compaction's move_freelist_head() does with list_cut_before() and
    list_splice_tail()."""
    first = head[h]
    if first == i:
        return
    last = tail[h]
    p = prv[i]
    nxt[last] = first
    prv[first] = last
    nxt[p] = -1
    prv[i] = -1
    head[h] = i
    tail[h] = p
