"""Block census and huge-page availability, computed from pageblock state.

"Free now" counts naturally aligned ranges that are entirely free buddy
memory; "obtainable" counts ranges that ideal compaction could empty: every
pageblock present and holding no unmovable or reclaimable content
(PB_has_unmovable/PB_has_reclaimable clear) and no reserved pages — the
"movable_order" census of the Contiguitas drgn scripts, at pageblock
granularity.  The PB_has_* bits are sticky until a block is entirely free,
so "obtainable" is conservative, as the SPB series' own counters are.
"""
import numpy as np

from ..mm.buddy import migratetype_to_has_bit

from ..mm.const import (MIGRATE_TYPES, MIGRATETYPE_NAMES,
                        PB_all_free, PB_has_mask, PB_has_reclaimable, PB_has_unmovable,
                        PG_reserved, SUPERPAGEBLOCK_NR_PAGEBLOCKS,
                        pageblock_nr_pages)

__all__ = ["pageblock_census", "hugepage_availability", "reserved_pageblocks",
           "movable_order_census", "spb_census"]

_NON_MOVABLE = PB_has_unmovable | PB_has_reclaimable


def reserved_pageblocks(mem):
    """Boolean per pageblock: holds at least one memblock-reserved page."""
    npb = mem.pb_mt.size
    flags = mem.pg_flags
    pad = npb * pageblock_nr_pages - flags.size
    res = (flags & PG_reserved) != 0
    if pad:
        res = np.concatenate([res, np.zeros(pad, bool)])
    return res.reshape(npb, pageblock_nr_pages).any(axis=1)


def pageblock_census(mem):
    """Pageblocks by migratetype and content (Weiner's 2023 census classes).

    Returns {type: {"total", "free", "pure", "polluted"}} where polluted means
    the block holds content of another mobility class (e.g. unmovable pages in
    a MOVABLE block), and pure means used but not polluted.
    """
    present = mem.pb_zone >= 0
    mt = mem.pb_mt
    fl = mem.pb_flags
    out = {}
    for t in range(MIGRATE_TYPES):
        sel = present & (mt == t)
        own = migratetype_to_has_bit(t)
        free = sel & ((fl & PB_all_free) != 0)
        foreign = sel & ~free & ((fl & (PB_has_mask & ~own)) != 0)
        out[MIGRATETYPE_NAMES[t]] = {"total": int(sel.sum()), "free": int(free.sum()),
                                     "pure": int((sel & ~free & ~foreign).sum()),
                                     "polluted": int(foreign.sum())}
    return out


def hugepage_availability(mem, reserved=None):
    """2 MiB and 1 GiB ranges free now and obtainable by ideal compaction.
    ``reserved``: reserved_pageblocks(mem), if the caller keeps it."""
    present = mem.pb_zone >= 0
    fl = mem.pb_flags
    free = (fl & PB_all_free) != 0
    if reserved is None:
        reserved = reserved_pageblocks(mem)
    movable_only = ((fl & _NON_MOVABLE) == 0) & ~reserved
    # a 1 GiB range must be fully present and lie in one zone
    per = SUPERPAGEBLOCK_NR_PAGEBLOCKS
    nz = mem.pb_zone
    n = nz.size // per
    zone_ok = (nz[: n * per].reshape(n, per) == nz[: n * per].reshape(n, per)[:, :1]).all(axis=1)
    whole = present[: n * per].reshape(n, per).all(axis=1) & zone_ok
    gb_free = free[: n * per].reshape(n, per).all(axis=1) & whole
    gb_obt = movable_only[: n * per].reshape(n, per).all(axis=1) & whole
    return {
        "2m_free": int((free & present).sum()),
        "2m_obtainable": int((movable_only & present).sum()),
        "1g_free": int(gb_free.sum()),
        "1g_obtainable": int(gb_obt.sum()),
    }


def movable_order_census(mem, reserved=None):
    """For orders 9..18 (2 MiB .. 1 GiB): naturally aligned ranges entirely free
    now, and ranges ideal compaction could empty (the "movable_order" census of
    the Contiguitas drgn scripts, at pageblock granularity).  Ranges must be
    fully present and in one zone."""
    present = mem.pb_zone >= 0
    fl = mem.pb_flags
    if reserved is None:
        reserved = reserved_pageblocks(mem)
    free = ((fl & PB_all_free) != 0) & present
    movable = ((fl & _NON_MOVABLE) == 0) & ~reserved & present
    out = {}
    for order in range(9, 19):
        per = 1 << (order - 9)
        n = mem.pb_zone.size // per
        z = mem.pb_zone[: n * per].reshape(n, per)
        one_zone = (z == z[:, :1]).all(axis=1)
        out[order] = {"free": int((free[: n * per].reshape(n, per).all(axis=1) & one_zone).sum()),
                      "obtainable": int((movable[: n * per].reshape(n, per).all(axis=1)
                                         & one_zone).sum())}
    return out


def spb_census(mem, reserved=None):
    """Superpageblocks (1 GiB ranges) of each zone by the SPB series' category,
    computed from the pageblock content bits: tainted (any pageblock with
    unmovable or reclaimable content), empty (every pageblock free) or clean.
    Under the stock allocator this is the count the series compares against."""
    from ..mm.const import SUPERPAGEBLOCK_NR_PAGEBLOCKS, ZONE_NAMES
    per = SUPERPAGEBLOCK_NR_PAGEBLOCKS
    fl = mem.pb_flags
    nz = mem.pb_zone
    n = (nz.size + per - 1) // per
    pad = n * per - nz.size
    zone = np.concatenate([nz, np.full(pad, -1, nz.dtype)]).reshape(n, per)
    flg = np.concatenate([fl, np.zeros(pad, fl.dtype)]).reshape(n, per)
    out = {}
    for z in range(len(ZONE_NAMES)):
        inz = zone == z
        has = inz.any(axis=1)
        if not has.any():
            continue
        tainted = (inz & ((flg & _NON_MOVABLE) != 0)).any(axis=1) & has
        empty = (~inz | ((flg & PB_all_free) != 0)).all(axis=1) & has & ~tainted
        out[ZONE_NAMES[z]] = {"total": int(has.sum()), "tainted": int(tainted.sum()),
                              "empty": int(empty.sum()),
                              "clean": int((has & ~tainted & ~empty).sum())}
    return out
