"""/proc/kpageflags dumps: one little-endian u64 of KPF_* bits per pfn.

Bit numbers are include/uapi/linux/kernel-page-flags.h (0..26) and the
kernel-internal include/linux/kernel-page-flags.h (32..42).  KPF_BUDDY is set
on every page of a free buddy block (head and tail pages); pages parked on PCP
lists are not marked.  Splitting each run of buddy pages greedily into
naturally aligned power-of-two blocks gives the free blocks
(:func:`free_blocks_from_kpageflags`).
"""
from __future__ import annotations

import os

import numpy as np

from spbsim.trace.ftrace import open_trace

__all__ = [
    "KPF_LOCKED", "KPF_ERROR", "KPF_REFERENCED", "KPF_UPTODATE", "KPF_DIRTY", "KPF_LRU",
    "KPF_ACTIVE", "KPF_SLAB", "KPF_WRITEBACK", "KPF_RECLAIM", "KPF_BUDDY", "KPF_MMAP",
    "KPF_ANON", "KPF_SWAPCACHE", "KPF_SWAPBACKED", "KPF_COMPOUND_HEAD", "KPF_COMPOUND_TAIL",
    "KPF_HUGE", "KPF_UNEVICTABLE", "KPF_HWPOISON", "KPF_NOPAGE", "KPF_KSM", "KPF_THP",
    "KPF_OFFLINE", "KPF_ZERO_PAGE", "KPF_IDLE", "KPF_PGTABLE", "KPF_RESERVED", "KPF_MLOCKED",
    "KPF_MAPPEDTODISK", "KPF_PRIVATE", "KPF_PRIVATE_2", "KPF_OWNER_PRIVATE", "KPF_ARCH",
    "KPF_UNCACHED", "KPF_SOFTDIRTY", "KPF_ARCH_2", "KPF_ARCH_3", "KPF_NAMES",
    "load_kpageflags", "kpf_mask", "kpf_names", "buddy_runs", "free_blocks_from_kpageflags",
    "free_block_counts",
]

KPF_LOCKED = 0
KPF_ERROR = 1
KPF_REFERENCED = 2
KPF_UPTODATE = 3
KPF_DIRTY = 4
KPF_LRU = 5
KPF_ACTIVE = 6
KPF_SLAB = 7
KPF_WRITEBACK = 8
KPF_RECLAIM = 9
KPF_BUDDY = 10
KPF_MMAP = 11
KPF_ANON = 12
KPF_SWAPCACHE = 13
KPF_SWAPBACKED = 14
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17
KPF_UNEVICTABLE = 18
KPF_HWPOISON = 19
KPF_NOPAGE = 20
KPF_KSM = 21
KPF_THP = 22
KPF_OFFLINE = 23
KPF_ZERO_PAGE = 24
KPF_IDLE = 25
KPF_PGTABLE = 26
# kernel hacking assistances (include/linux/kernel-page-flags.h), "subject to change"
KPF_RESERVED = 32
KPF_MLOCKED = 33
KPF_MAPPEDTODISK = 34
KPF_PRIVATE = 35
KPF_PRIVATE_2 = 36
KPF_OWNER_PRIVATE = 37
KPF_ARCH = 38
KPF_UNCACHED = 39
KPF_SOFTDIRTY = 40
KPF_ARCH_2 = 41
KPF_ARCH_3 = 42

#: bit -> name without the KPF_ prefix
KPF_NAMES = {v: k[4:] for k, v in dict(globals()).items()
             if k.startswith("KPF_") and isinstance(v, int)}


def load_kpageflags(path) -> np.ndarray:
    """Read a dump (plain, .xz, .gz, .zst) into a uint64 array indexed by pfn."""
    with open_trace(os.fspath(path), "rb") as f:
        data = f.read()
    if len(data) % 8:
        raise ValueError(f"{path}: size {len(data)} is not a multiple of 8")
    return np.frombuffer(data, dtype="<u8").astype(np.uint64, copy=False)


def kpf_mask(flags: np.ndarray, bit: int) -> np.ndarray:
    """Boolean array: pages with KPF bit ``bit`` set."""
    return (flags >> np.uint64(bit)) & np.uint64(1) == 1


def kpf_names(value: int) -> list[str]:
    """Names of the bits set in one value (unknown bits as 'bitN')."""
    return [KPF_NAMES.get(b, f"bit{b}") for b in range(64) if value >> b & 1]


def buddy_runs(flags: np.ndarray, boundaries=()) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs [start, end) of KPF_BUDDY pages, also cut at the given pfns."""
    buddy = kpf_mask(flags, KPF_BUDDY).astype(np.int8)
    edge = np.diff(np.concatenate(([0], buddy, [0])))
    starts = np.flatnonzero(edge == 1)
    ends = np.flatnonzero(edge == -1)
    cuts = np.unique(np.asarray(list(boundaries), dtype=np.int64))
    if len(cuts) and len(starts):
        run = np.maximum(np.searchsorted(starts, cuts, side="right") - 1, 0)
        c = cuts[(cuts > starts[run]) & (cuts < ends[run])]     # cuts inside a run
        starts = np.sort(np.concatenate((starts, c)))
        ends = np.sort(np.concatenate((ends, c)))
    return starts.astype(np.int64), ends.astype(np.int64)


def free_blocks_from_kpageflags(flags: np.ndarray, max_order: int = 10,
                                boundaries=()) -> tuple[np.ndarray, np.ndarray]:
    """Free buddy blocks as arrays (pfn, order), sorted by pfn.

    Each run of KPF_BUDDY pages (cut at ``boundaries``, e.g. zone starts) is
    split greedily from its start into the largest naturally aligned block of
    order <= ``max_order`` that fits.
    """
    pos, end = buddy_runs(flags, boundaries)
    out_pfn, out_order = [], []
    while len(pos):
        # largest k with pos % 2^k == 0, 2^k <= end - pos, k <= max_order
        low = pos & -pos
        align = np.where(pos == 0, 1 << max_order, low)
        k_align = np.log2(np.minimum(align, 1 << max_order)).astype(np.int64)
        k_fit = np.floor(np.log2(end - pos)).astype(np.int64)
        k = np.minimum(k_align, k_fit)
        out_pfn.append(pos.copy())
        out_order.append(k)
        pos = pos + (np.int64(1) << k)
        live = pos < end
        pos, end = pos[live], end[live]
    if not out_pfn:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    pfn = np.concatenate(out_pfn)
    order = np.concatenate(out_order)
    idx = np.argsort(pfn, kind="stable")
    return pfn[idx], order[idx].astype(np.int8)


def free_block_counts(pfn: np.ndarray, order: np.ndarray, zones, nr_orders: int = 11):
    """Per-zone per-order block counts (buddyinfo shape).

    ``zones`` is a sequence of (name, start_pfn, end_pfn); returns {name: int64[nr_orders]}.
    """
    out = {}
    for name, start, end in zones:
        sel = (pfn >= start) & (pfn < end)
        out[name] = np.bincount(order[sel].astype(np.int64), minlength=nr_orders)[:nr_orders]
    return out
