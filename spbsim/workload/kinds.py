"""The kinds of workload source (``[[source]] kind = ...``): one entry per
kind with everything the scenario parser, the request stream and the engine
need to know of it.  Kinds and their keys: docs/scenarios.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..mm import gfp as G
from ..mm.const import SUPERPAGEBLOCK_ORDER

__all__ = ["KindInfo", "KINDS", "KIND_CODES", "TIMED", "HUGETLB", "HUGETLB_1G_ORDER",
           "FALLBACK_OWN_GFP", "kind_keys"]

#: handlers: "timed" sources go through the request stream and the engine's
#: timed objects; "hugetlb" sources make one 1 GiB allocation attempt per
#: interval (alloc_contig_pages), run by the engine between ticks
TIMED, HUGETLB = "timed", "hugetlb"
#: ``fallback_gfp`` value: the fallback pages take the source's own gfp
FALLBACK_OWN_GFP = -1
HUGETLB_1G_ORDER = SUPERPAGEBLOCK_ORDER   # 18: one PUD-sized (1 GiB) page


@dataclass(frozen=True)
class KindInfo:
    """One kind of source.

    ``code``: its number in compiled code (``engine.state.KIND_CODES``).
    ``default_gfp`` and ``default_orders`` {order: weight}: used where the
    source gives none.  ``lru``: the reclaim list its pages join ("anon",
    "file", "slab" for the shrinker-reclaimed slab objects, None: not
    reclaimable).  ``reclaim``: when they can be reclaimed ("swap": only if
    the scenario has swap, "always", "objects": through the slab shrinker,
    None: never).  ``fallback_gfp``: a failed request of order > 0 is retried
    as order-0 pages with this gfp (THP fault fallback, kvmalloc's vmalloc
    fallback, page cache readahead's small folios; 0: no fallback,
    FALLBACK_OWN_GFP: the source's own gfp).  ``large_gfp``: gfp bits the
    caller adds to requests of order > 0 (page cache large folios).  ``handler``: TIMED or HUGETLB.  ``keys``:
    source keys that only this kind takes.
    """
    code: int
    default_gfp: int
    lru: str | None
    default_orders: dict
    reclaim: str | None = None
    fallback_gfp: int = 0
    large_gfp: int = 0
    handler: str = TIMED
    keys: tuple = ()
    description: str = ""


KINDS: dict[str, KindInfo] = {
    "anon": KindInfo(
        0, G.GFP_HIGHUSER_MOVABLE, "anon", {0: 1.0}, "swap",
        description="anonymous memory (process heaps, tmpfs/shmem: swap-backed)"),
    "thp": KindInfo(
        1, G.GFP_TRANSHUGE_LIGHT, "anon", {9: 1.0}, "swap",
        fallback_gfp=G.GFP_HIGHUSER_MOVABLE,
        description="transparent huge page faults; a failure falls back to order-0 pages"),
    # A large folio (order > 0) is asked for with __GFP_NORETRY | __GFP_NOWARN
    # (readahead_gfp_mask() in page_cache_ra_order(); __filemap_get_folio()
    # for orders above the mapping's minimum); when it fails, readahead reads
    # the range as small folios instead (do_page_cache_ra()).
    "pagecache": KindInfo(
        2, G.GFP_HIGHUSER_MOVABLE, "file", {0: 1.0}, "always",
        fallback_gfp=FALLBACK_OWN_GFP, large_gfp=G.__GFP_NORETRY | G.__GFP_NOWARN,
        description="file pages (read, written, mmapped); a failed large folio falls "
                    "back to order-0 pages"),
    "slab_reclaimable": KindInfo(
        3, G.GFP_KERNEL | G.__GFP_RECLAIMABLE, "slab", {0: 0.6, 2: 0.1, 3: 0.3}, "objects",
        keys=("objects_per_slab",),
        description="SLAB_RECLAIM_ACCOUNT caches (dentry, inode): freed when all objects "
                    "of a slab are"),
    "unmovable": KindInfo(
        4, G.GFP_KERNEL, None, {0: 0.85, 1: 0.05, 2: 0.05, 3: 0.05},
        description="kmalloc and other kernel objects"),
    "kernel_stack": KindInfo(
        5, G.GFP_KERNEL_ACCOUNT, None, {2: 1.0},
        description="16 KiB kernel stacks of new tasks"),
    "pagetable": KindInfo(
        6, G.GFP_KERNEL_ACCOUNT | G.__GFP_ZERO, None, {0: 1.0},
        description="page-table pages"),
    "atomic": KindInfo(
        7, G.GFP_ATOMIC | G.__GFP_NOWARN, None, {0: 0.9, 1: 0.05, 3: 0.05},
        description="network receive buffers and other atomic-context allocations"),
    "kvmalloc": KindInfo(
        8, G.GFP_KERNEL | G.__GFP_NORETRY | G.__GFP_NOWARN, None,
        {2: 0.4, 3: 0.3, 4: 0.2, 5: 0.1}, fallback_gfp=G.GFP_KERNEL,
        description="kvmalloc: high-order kmalloc first, order-0 (vmalloc) pages on failure"),
    "hugetlb_1g": KindInfo(
        9, G.GFP_HIGHUSER_MOVABLE | G.__GFP_COMP | G.__GFP_RETRY_MAYFAIL | G.__GFP_NOWARN,
        None, {HUGETLB_1G_ORDER: 1.0}, handler=HUGETLB, keys=("interval",),
        description="one contiguous 1 GiB allocation attempt every `interval`, freed after "
                    "`lifetime`"),
}

#: kind name -> code, for compiled code
KIND_CODES = {name: k.code for name, k in KINDS.items()}
assert len(set(KIND_CODES.values())) == len(KINDS)


def kind_keys() -> dict:
    """Source key -> the kinds that take it (keys not every kind takes)."""
    out = {}
    for name, k in KINDS.items():
        for key in k.keys:
            out.setdefault(key, []).append(name)
    return out
