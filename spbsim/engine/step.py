"""The compiled event loop: timed frees, allocation requests with the kernel's
caller-side fallbacks (THP fault -> base pages, kvmalloc -> vmalloc), reclaim
list membership, and kswapd/kcompactd when woken.

Requests arrive as arrays sorted by time (one engine tick); expiries due
before each request are processed first, so frees and allocations interleave
in simulated time.
"""
from ..mm.const import PG_pinned
from ..mm.background import background, background_due
from ..mm.jit import njit, njit_inline
from ..mm.lru import lru_add, lru_del
from ..mm.page_alloc import alloc_pages_call
from ..mm.page_free import free_pages_call
from ..mm.split import free_object_pieces
from ..mm.state import CUR_CLOCK, CUR_OWNER, VMSTAT
from ..mm.vmscan import next_random
from .state import ES, K_KVMALLOC, K_PAGECACHE, K_THP

_VM_THP_ALLOC = VMSTAT["thp_fault_alloc"]
_VM_THP_FALLBACK = VMSTAT["thp_fault_fallback"]
_S_REQ, _S_ALLOC, _S_FAIL, _S_FB, _S_FBP, _S_EXP, _S_PAGES = (
    ES["requests"], ES["allocs"], ES["fails"], ES["fallbacks"], ES["fallback_pages"],
    ES["expired"], ES["pages_allocated"])
_S_THR = ES["throttled"]


# ---------------------------------------------------------------- timer heap

@njit_inline
def timer_push(e, key, oid):
    n = e.tm_n[0]
    i = n
    e.tm_n[0] = n + 1
    while i > 0:
        parent = (i - 1) >> 1
        if e.tm_key[parent] <= key:
            break
        e.tm_key[i] = e.tm_key[parent]
        e.tm_id[i] = e.tm_id[parent]
        i = parent
    e.tm_key[i] = key
    e.tm_id[i] = oid


@njit
def timer_pop(e):
    """Remove the earliest timer; returns its object id."""
    top = e.tm_id[0]
    n = e.tm_n[0] - 1
    e.tm_n[0] = n
    if n == 0:
        return top
    key = e.tm_key[n]
    oid = e.tm_id[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and e.tm_key[c + 1] < e.tm_key[c]:
            c += 1
        if e.tm_key[c] >= key:
            break
        e.tm_key[i] = e.tm_key[c]
        e.tm_id[i] = e.tm_id[c]
        i = c
    e.tm_key[i] = key
    e.tm_id[i] = oid
    return top


# ---------------------------------------------------------------- objects

@njit
def expire_until(m, e, now, ncpu):
    """Free every timed object whose lifetime ended at or before ``now``."""
    while e.tm_n[0] > 0 and e.tm_key[0] <= now:
        oid = timer_pop(e)
        pfn = m.obj_pfn[oid]
        if pfn >= 0:
            src = m.pg_owner[pfn]
            lru = m.owner_lru[src]
            if lru >= 0:
                lru_del(m, pfn, lru)
            e.src_stat[src, _S_EXP] += 1
            m.obj_pfn[oid] = -1
            free_pages_call(m, pfn, m.pg_order[pfn], oid % ncpu)
        if m.obj_pc[oid] >= 0:      # the rest of a block split for migration
            free_object_pieces(m, oid, oid % ncpu)
        e.obj_top[0] += 1
        e.obj_free[e.obj_top[0] - 1] = oid


@njit_inline
def place(m, e, pfn, src, life_ns, now):
    """A block handed to its user: reclaim list, pin, timer."""
    lru = m.owner_lru[src]
    if lru >= 0:
        lru_add(m, pfn, lru)
    ppm = e.src_pinned_ppm[src]
    if ppm > 0 and (next_random(m) >> 11) % 1000000 < ppm:
        m.pg_flags[pfn] |= PG_pinned
    if life_ns >= 0 and e.obj_top[0] > 0:
        e.obj_top[0] -= 1
        oid = e.obj_free[e.obj_top[0]]
        m.obj_pfn[oid] = pfn
        m.pg_obj[pfn] = oid
        timer_push(e, now + life_ns, oid)


@njit
def fallback_base_pages(m, e, src, order, cpu, life_ns, now):
    """The caller's fallback after a failed high-order attempt: a THP fault maps
    base pages, kvmalloc uses vmalloc, readahead reads small folios
    (do_page_cache_ra()): 2^order order-0 allocations."""
    gfp = e.src_fallback_gfp[src]
    got = 0
    for _ in range(1 << order):
        p = alloc_pages_call(m, 0, gfp, cpu, src)
        if p < 0:
            break
        place(m, e, p, src, life_ns, now)
        got += 1
    e.src_stat[src, _S_FB] += 1
    e.src_stat[src, _S_FBP] += got
    return got


@njit
def run_requests(m, e, t_ns, src, order, cpu, life_ns, ncpu):
    """Process one tick's requests in time order.  Returns requests done."""
    n = t_ns.shape[0]
    for i in range(n):
        now = t_ns[i]
        m.cur[CUR_CLOCK] = now
        expire_until(m, e, now, ncpu)
        s = src[i]
        o = order[i]
        c = cpu[i]
        e.src_stat[s, _S_REQ] += 1
        if m.owner_pages[s] >= e.src_limit[s]:
            e.src_stat[s, _S_THR] += 1
            continue
        pfn = alloc_pages_call(m, o, e.src_gfp[s] if o == 0 else e.src_large_gfp[s], c, s)
        kind = e.src_kind[s]
        if pfn >= 0:
            place(m, e, pfn, s, life_ns[i], now)
            e.src_stat[s, _S_ALLOC] += 1
            e.src_stat[s, _S_PAGES] += 1 << o
            if kind == K_THP:
                m.vm[_VM_THP_ALLOC] += 1
        else:
            e.src_stat[s, _S_FAIL] += 1
            if kind == K_THP:
                m.vm[_VM_THP_FALLBACK] += 1
                fallback_base_pages(m, e, s, o, c, life_ns[i], now)
            elif (kind == K_KVMALLOC or kind == K_PAGECACHE) and o > 0:
                fallback_base_pages(m, e, s, o, c, life_ns[i], now)
        m.cur[CUR_OWNER] = 0            # work until the next request is nobody's
        if background_due(m, now):
            background(m, now, c)
    return n


@njit
def advance_to(m, e, now, ncpu):
    """End of a tick: expire timers up to ``now`` and run woken background work."""
    m.cur[CUR_CLOCK] = now
    expire_until(m, e, now, ncpu)
    background(m, now, 0)
