"""Engine state: the timer heap of timed objects, object ids and per-source
tables, as a namedtuple of arrays for compiled code (like spbsim.mm.state)."""
from collections import namedtuple

import numpy as np

from ..workload.kinds import KIND_CODES

__all__ = ["Eng", "new_eng", "KIND_CODES", "SRC_STATS", "ES"]

#: kinds compiled code treats apart: THP faults count thp_fault_*, and a
#: kvmalloc or a page cache large folio falls back only from orders above 0
#: (spbsim.workload.kinds)
K_THP = KIND_CODES["thp"]
K_KVMALLOC = KIND_CODES["kvmalloc"]
K_PAGECACHE = KIND_CODES["pagecache"]

#: per-source counters
SRC_STATS = ["requests", "allocs", "fails", "fallbacks", "fallback_pages", "expired",
             "pages_allocated", "throttled"]
ES = {n: i for i, n in enumerate(SRC_STATS)}

Eng = namedtuple("Eng", [
    "tm_key", "tm_id", "tm_n",        # binary min-heap of (expiry ns, object id)
    "obj_free", "obj_top",            # stack of free object ids
    # per owner id (pg_owner): 256 entries
    "src_gfp", "src_kind", "src_pinned_ppm", "src_fallback_gfp", "src_limit",
    "src_large_gfp",                  # the gfp of requests of order > 0 (kinds.large_gfp)
    "src_stat",                       # int64[256, len(SRC_STATS)]
    "misc",                           # [last_bg_ns, requests_done]
])


def new_eng(obj_capacity):
    """Empty engine state for ``obj_capacity`` concurrently live timed objects;
    the caller fills the per-owner source tables."""
    cap = max(int(obj_capacity), 1)
    return Eng(
        tm_key=np.zeros(cap, np.int64), tm_id=np.zeros(cap, np.int32),
        tm_n=np.zeros(1, np.int64),
        obj_free=np.arange(cap - 1, -1, -1, dtype=np.int32), obj_top=np.array([cap], np.int64),
        src_gfp=np.zeros(256, np.int64), src_kind=np.full(256, -1, np.int64),
        src_pinned_ppm=np.zeros(256, np.int64), src_fallback_gfp=np.zeros(256, np.int64),
        src_limit=np.full(256, 1 << 62, np.int64),
        src_large_gfp=np.zeros(256, np.int64),
        src_stat=np.zeros((256, len(SRC_STATS)), np.int64),
        misc=np.zeros(4, np.int64),
    )
