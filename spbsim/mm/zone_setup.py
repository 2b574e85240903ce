"""Boot-time zone setup (mm/mm_init.c, mm/page_alloc.c): present/managed pages,
pageblock init, min_free_kbytes, watermarks, lowmem_reserve and pcp sizing."""
import math


from .const import (MAX_NR_ZONES, MIGRATE_MOVABLE, MIGRATE_PCPTYPES,
                    PB_has_movable, PG_reserved, ZONE_NORMAL, pageblock_nr_pages,
                    pageblock_order)
from .state import (PCP_BATCH, PCP_FLAGS, PCP_HIGH, PCP_HIGH_MAX, PCP_HIGH_MIN,
                    PCPF_FREE_HIGH_BATCH, ZSTAT, ZS_MANAGED, ZS_WMARK_LOW, ZS_WMARK_MIN)

__all__ = ["init_zones", "free_ranges", "default_min_free_kbytes",
           "setup_per_zone_wmarks", "setup_per_zone_lowmem_reserve",
           "setup_pcp", "zone_batchsize", "LOWMEM_RESERVE_RATIO"]

#: sysctl_lowmem_reserve_ratio for DMA, DMA32, Normal
LOWMEM_RESERVE_RATIO = (256, 256, 32)


def _subtract(ranges, cuts):
    out = []
    for s, e in ranges:
        pieces = [(s, e)]
        for cs, ce in cuts:
            nxt = []
            for ps, pe in pieces:
                if ce <= ps or cs >= pe:
                    nxt.append((ps, pe))
                    continue
                if ps < cs:
                    nxt.append((ps, cs))
                if ce < pe:
                    nxt.append((ce, pe))
            pieces = nxt
        out.extend(pieces)
    return out


def present_ranges(geom, z):
    zs, ze = geom.zone_start[z], geom.zone_end[z]
    if ze <= zs:
        return []
    ram = [(max(s, zs), min(e, ze)) for s, e in geom.ram if max(s, zs) < min(e, ze)]
    return _subtract(ram, geom.holes)


def free_ranges(geom, z):
    """Present pfn ranges of zone z minus reserved pages: what boot frees."""
    return _subtract(present_ranges(geom, z), [(s, e) for s, e, _ in geom.reserved])


def init_zones(m, geom):
    """Zone spans, present pageblocks (all MOVABLE with PB_has_movable, as
    init_pageblock_migratetype does), reserved pages; fills zstat sizes."""
    m.pb_zone[:] = -1
    for z in range(MAX_NR_ZONES):
        m.zone_start[z] = geom.zone_start[z]
        m.zone_end[z] = geom.zone_end[z]
        present = 0
        for s, e in present_ranges(geom, z):
            m.pb_zone[s >> pageblock_order:(e + pageblock_nr_pages - 1) >> pageblock_order] = z
            present += e - s
        reserved = 0
        for s, e, _ in geom.reserved:
            for ps, pe in present_ranges(geom, z):
                lo, hi = max(s, ps), min(e, pe)
                if lo < hi:
                    m.pg_flags[lo:hi] = PG_reserved
                    reserved += hi - lo
        m.zstat[z, ZSTAT["present"]] = present
        m.zstat[z, ZSTAT["spanned"]] = geom.zone_end[z] - geom.zone_start[z]
        m.zstat[z, ZS_MANAGED] = present - reserved
    present_pb = m.pb_zone >= 0
    m.pb_mt[present_pb] = MIGRATE_MOVABLE
    m.pb_flags[present_pb] = PB_has_movable


def nr_free_buffer_pages(m):
    return int(sum(m.zstat[z, ZS_MANAGED] for z in range(MAX_NR_ZONES) if z <= ZONE_NORMAL))


def default_min_free_kbytes(m, thp=True):
    """init_per_zone_wmark_min() then khugepaged's set_recommended_min_free_kbytes()."""
    lowmem_kbytes = nr_free_buffer_pages(m) * 4
    kb = min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)
    if thp:
        nr_zones = sum(1 for z in range(MAX_NR_ZONES) if z <= ZONE_NORMAL and m.zstat[z, ZS_MANAGED] > 0)
        rec = pageblock_nr_pages * nr_zones * 2
        rec += pageblock_nr_pages * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
        rec = min(rec, nr_free_buffer_pages(m) // 20) * 4
        kb = max(kb, rec)
    return kb


def setup_per_zone_wmarks(m, min_free_kbytes, watermark_scale_factor=10):
    """__setup_per_zone_wmarks(): MIN proportional to managed; LOW/HIGH/PROMO gaps."""
    pages_min = min_free_kbytes >> 2
    lowmem = sum(int(m.zstat[z, ZS_MANAGED]) for z in range(MAX_NR_ZONES))
    for z in range(MAX_NR_ZONES):
        managed = int(m.zstat[z, ZS_MANAGED])
        tmp = pages_min * managed // lowmem if lowmem else 0
        gap = max(tmp >> 2, managed * watermark_scale_factor // 10000)
        m.zstat[z, ZS_WMARK_MIN] = tmp
        m.zstat[z, ZS_WMARK_MIN + 1] = tmp + gap
        m.zstat[z, ZS_WMARK_MIN + 2] = tmp + 2 * gap
        m.zstat[z, ZS_WMARK_MIN + 3] = tmp + 3 * gap
        m.zstat[z, ZSTAT["watermark_boost"]] = 0


def setup_per_zone_lowmem_reserve(m, ratio=LOWMEM_RESERVE_RATIO):
    """setup_per_zone_lowmem_reserve(): lowmem_reserve[j] of zone i = managed
    pages of zones i+1..j divided by ratio[i]."""
    m.lowmem_reserve[:] = 0
    for i in range(MAX_NR_ZONES - 1):
        managed_i = int(m.zstat[i, ZS_MANAGED])
        clear = ratio[i] == 0 or managed_i == 0
        acc = 0
        for j in range(i + 1, MAX_NR_ZONES):
            acc += int(m.zstat[j, ZS_MANAGED])
            m.lowmem_reserve[i, j] = 0 if clear else acc // ratio[i]


def _rounddown_pow_of_two(n):
    return 1 << (n.bit_length() - 1) if n > 0 else 0


def zone_batchsize(managed):
    """zone_batchsize(): ~1/4 MiB of the zone per batch, at most 63 pages."""
    batch = min(managed >> 10, (1 << 20) // 4096)
    batch //= 4
    if batch < 1:
        batch = 1
    return max(1, _rounddown_pow_of_two(batch + batch // 2) - 1)


def setup_pcp(m, nr_cpus, high_fraction=0, static_high=False, data_slice_pages=0):
    """zone_set_pageset_high_and_batch(): batch, high_min (LOW mark split across
    cpus) and high_max (managed/8 split across cpus), both >= 4 * batch.
    ``static_high`` (v6.1 zone_highsize(), no autotuning): high_max = high_min.
    ``data_slice_pages``: the cpu's per_cpu_data_slice_size in pages;
    zone_pcp_update_cacheinfo() sets PCPF_FREE_HIGH_BATCH where it exceeds
    3 * batch (v6.9 on; the 6.1 free path does not read it)."""
    for z in range(MAX_NR_ZONES):
        managed = int(m.zstat[z, ZS_MANAGED])
        batch = zone_batchsize(managed)
        if high_fraction:
            hmin = hmax = max(managed // high_fraction // nr_cpus, batch * 4)
        else:
            hmin = max(int(m.zstat[z, ZS_WMARK_LOW]) // nr_cpus, batch * 4)
            hmax = hmin if static_high else max(managed // 8 // nr_cpus, batch * 4)
        m.pcp[z, :, PCP_BATCH] = batch
        m.pcp[z, :, PCP_HIGH_MIN] = hmin
        m.pcp[z, :, PCP_HIGH_MAX] = hmax
        m.pcp[z, :, PCP_HIGH] = hmin
        if data_slice_pages > 3 * batch:
            m.pcp[z, :, PCP_FLAGS] |= PCPF_FREE_HIGH_BATCH
        else:
            m.pcp[z, :, PCP_FLAGS] &= ~PCPF_FREE_HIGH_BATCH
