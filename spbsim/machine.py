"""The Python API: build a machine, allocate and free, read /proc outputs.

    >>> from spbsim import Machine
    >>> m = Machine(memory="4G")
    >>> pfn = m.alloc(order=2, gfp="GFP_KERNEL")
    >>> m.free(pfn, order=2)
    >>> print(m.buddyinfo())

Every method that changes state runs compiled code (spbsim.mm.*); this layer
validates input, names things and renders output.
"""
import hashlib

import numpy as np

from .errors import ConfigError, FreeError
from .mm import gfp as gfpmod
from .mm.const import (KERNEL_VERSIONS, KV_6_1, MAX_NR_ZONES, MAX_PAGE_ORDER, PCPBUDDY_RFC,
                       NEVER_NS, MIGRATE_TYPES, MIGRATETYPE_NAMES, NR_PAGE_ORDERS,
                       PB_all_free, PB_compact_skip, PB_has_movable,
                       PB_has_reclaimable, PB_has_unmovable, PG_buddy, PG_head,
                       PG_MT_SHIFT, PG_pcp, PG_reserved, ZONE_NAMES,
                       pageblock_nr_pages, pageblock_order)
from .mm.debug_vm import VIOLATIONS, check_mem
from .mm.geometry import build_geometry, parse_size
from .mm.page_alloc import batch_alloc_free, free_pages_memory
from .mm.page_free import EFREE_NOT_ALLOCATED, EFREE_ORDER, EFREE_RANGE
from .mm.pcp import drain_all_pages
from .mm.mm_init import new_mem
from .mm.state import (CFG, NODE, SIMSTAT_NAMES, VMSTAT_NAMES, ZSTAT,
                       ZS_MANAGED, PCP_BATCH,
                       PCP_COUNT, PCP_HIGH)
from .mm.zone_setup import (default_min_free_kbytes, free_ranges, init_zones,
                            setup_pcp, setup_per_zone_lowmem_reserve,
                            setup_per_zone_wmarks)
from .observe import procfs
from .switches import SWITCH_DEFAULTS, switches_doc

__all__ = ["Machine", "InvariantError", "OWNER_EARLY_KERNEL", "OWNER_API"]

OWNER_NONE = 0
OWNER_EARLY_KERNEL = 1
OWNER_API = 2

PB_FLAG_NAMES = ((PB_all_free, "PB_all_free"), (PB_has_unmovable, "PB_has_unmovable"),
                 (PB_has_reclaimable, "PB_has_reclaimable"), (PB_has_movable, "PB_has_movable"),
                 (PB_compact_skip, "PB_compact_skip"))


def _spb_cfg(name):
    from .mm.spb import params
    return getattr(params, name)


class InvariantError(AssertionError):
    """The DEBUG_VM check found an inconsistent state (a bug in spbsim)."""


def _gfp(value, what="gfp"):
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return gfpmod.parse_gfp(str(value))
    except ValueError as e:
        raise ConfigError(f"{what}: {e}") from None


class Machine:
    """One NUMA node of physical memory under the stock page allocator.

    Parameters (all validated; a bad value raises ConfigError naming it):
      memory: '1G'..'4T'.  low_memory: RAM below 4 GiB (default min(memory, 3G)).
      cpus: per-cpu page lists (1..256).  version: 'recent' (v6.19/7.0), '6.12'
      (the 6.12 LTS kernel, 6.12.117) or '6.1' (v6.1 LTS fallback and watermark rules).
      watermark_boost_factor: vm sysctl (0 = off).
      min_free_kbytes / watermark_scale_factor: vm sysctls (None = kernel default
      incl. khugepaged's THP recommendation).  pcp: per-cpu lists on/off.
      early_unmovable: bytes of unmovable kernel memory allocated right after
      boot (default 16M + 0.25% of memory).  trace: record kmem tracepoints
      (trace_capacity records).  Geometry extras: kernel_image,
      memmap_bytes_per_page, firmware_reserved, holes, reserved.
      Reclaim/compaction: reclaim, compaction, slab_free_ppm,
      compaction_proactiveness, extfrag_threshold, kswapd_rate (per simulated
      second), compaction_capture (a direct compactor takes the page its frees
      make, compaction_capture(); False: it retries the free lists instead).
      pcpbuddy: PCPBuddy, per-cpu owned pageblocks that merge on the pcp lists
      (docs/spb.md "PCPBuddy"): True is Johannes' RFC, phases 0-3; the SPB
      switch spb.pcpbuddy=s1 (no phase 2) or v2_21 sets it too.
      per_cpu_data_slice_size: [SIM] each cpu's share of its last-level
      cache (cacheinfo's per_cpu_data_slice_size, default 1M); where it
      exceeds 3 pcp batches, PCPF_FREE_HIGH_BATCH makes free_high wait until
      the pcp list holds a batch (0: never, the model before this rule).
      compaction_migrate_us / compaction_scan_ns: [SIM] the time kcompactd
      (and a compact_memory write, compact_memory_zone's budget) takes per
      page it migrates / per page its scanners look at (kcompactd_cost_ns;
      docs/model.md "Compaction's duration").
      watermarks: {zone name: (min, low, high[, promo])} taken as
      they are instead of __setup_per_zone_wmarks()'s (a recording's zoneinfo:
      the kernel computed them from the managed pages of the moment
      min_free_kbytes was last written); pcp high_min follows the LOW mark.  kswapd_replay_run_ms: [SIM] in a replay (reclaim in the
      stream), how long one balance_pgdat() run of kswapd lasts (it drops the
      watermark boosts it began with when it ends).  migrate_untracked: let compaction move movable blocks
      allocated through this API (their pfns then change under you).
      piece_capacity: base pages of split timed objects that can be live at
      once (default 1/8 of the pfns when objects are tracked, else 0: API
      blocks need none); a split that would exceed it is refused.
      spb: None (stock allocator) or a superpageblock preset ('s1', 'v1',
      'v1-pre43', 'v2'); spb_set: {switch: value} overrides of the preset's
      switches (spbsim.mm.spb.params.SPB_SWITCHES).  The SPB allocator also
      turns on relabel_free_pageblocks and keep_nofragment (not at s1) and
      stops prep_new_page from setting the request type's PB_has bit.
    The switches a scenario sets (spbsim.switches.MACHINE_SWITCHES):
    """

    def __init__(self, memory="4G", cpus=4, version="recent",
                 defrag_mode=SWITCH_DEFAULTS["defrag_mode"],
                 watermark_boost_factor=15000, min_free_kbytes=None,
                 watermark_scale_factor=10, pcp=True, early_unmovable=None,
                 trace=False, trace_capacity=1 << 20, seed=0, low_memory=None,
                 kernel_image="48M", memmap_bytes_per_page=64, firmware_reserved="1M",
                 holes=(), reserved=(), relabel_free_pageblocks=False,
                 swap=SWITCH_DEFAULTS["swap"],
                 reclaim=True, compaction=True, slab_free_ppm=20000,
                 compaction_proactiveness=20, extfrag_threshold=500, obj_capacity=1,
                 kswapd_rate="4G", migrate_untracked=False, spb=None, spb_set=None,
                 kswapd_replay_run_ms=10, watermarks=None,
                 migrate_split_large=SWITCH_DEFAULTS["migrate_split_large"],
                 kcompactd_concurrent=SWITCH_DEFAULTS["kcompactd_concurrent"],
                 piece_capacity=None, compaction_capture=True, pcpbuddy=False,
                 per_cpu_data_slice_size="1M", compaction_migrate_us=50, compaction_scan_ns=100):
        if not isinstance(cpus, (int, np.integer)) or not 1 <= cpus <= 256:
            raise ConfigError(f"cpus={cpus!r}: allowed 1 to 256")
        if str(version) not in KERNEL_VERSIONS:
            raise ConfigError(f"version={version!r}: allowed {', '.join(KERNEL_VERSIONS)}")
        if not 0 <= int(watermark_boost_factor) <= 1 << 30:
            raise ConfigError(f"watermark_boost_factor={watermark_boost_factor!r}: must be >= 0")
        if not 1 <= int(watermark_scale_factor) <= 3000:
            raise ConfigError(f"watermark_scale_factor={watermark_scale_factor!r}: allowed 1 to 3000")
        self.geometry = build_geometry(memory, low_memory=low_memory, kernel_image=kernel_image,
                                       memmap_bytes_per_page=memmap_bytes_per_page,
                                       firmware_reserved=firmware_reserved, holes=holes,
                                       reserved=reserved)
        self.cpus = int(cpus)
        self.seed = int(seed)
        if not 0 <= int(slab_free_ppm) <= 1_000_000:
            raise ConfigError(f"slab_free_ppm={slab_free_ppm!r}: allowed 0 to 1000000")
        if not 0 <= int(compaction_proactiveness) <= 100:
            raise ConfigError(f"compaction_proactiveness={compaction_proactiveness!r}: allowed 0 to 100")
        if not 0 <= int(extfrag_threshold) <= 1000:
            raise ConfigError(f"extfrag_threshold={extfrag_threshold!r}: allowed 0 to 1000")
        self.spb_preset = None
        spb_state = None
        if spb is not None and spb is not False:
            from .spb_config import make_spb
            self.spb_preset, self.spb_switches, spb_state = make_spb(
                self.geometry, spb, spb_set, self.cpus)
            relabel_free_pageblocks = True
            from .mm.spb.params import PCPBUDDY_MODE, SPB_CFG_PCPBUDDY
            mode = PCPBUDDY_MODE[int(spb_state.cfg[SPB_CFG_PCPBUDDY])]
            if mode:
                pcpbuddy = mode
        elif spb_set:
            raise ConfigError("spb_set given without spb: the stock allocator has no SPB switches")
        if piece_capacity is None:
            piece_capacity = self.geometry.nr_pfns // 8 if int(obj_capacity) > 1 else 0
        if not 0 <= int(piece_capacity) < 2 ** 31 - 2:
            raise ConfigError(f"piece_capacity={piece_capacity!r}: allowed 0 to 2^31-3")
        self.mem = m = new_mem(self.geometry.nr_pfns, self.cpus, trace_capacity if trace else 0,
                               obj_capacity, spb=spb_state, piece_capacity=int(piece_capacity))
        m.cfg[CFG["version"]] = KERNEL_VERSIONS[str(version)]
        m.cfg[CFG["defrag_mode"]] = 1 if defrag_mode else 0
        m.cfg[CFG["watermark_boost_factor"]] = int(watermark_boost_factor)
        m.cfg[CFG["pcp_enabled"]] = 1 if pcp else 0
        m.cfg[CFG["nr_cpus"]] = self.cpus
        m.cfg[CFG["trace"]] = 1 if trace else 0
        m.cfg[CFG["nofragment"]] = 1
        m.cfg[CFG["relabel_free_pageblocks"]] = 1 if relabel_free_pageblocks else 0
        m.cfg[CFG["swap"]] = 1 if swap else 0
        m.cfg[CFG["reclaim"]] = 1 if reclaim else 0
        m.cfg[CFG["compaction"]] = 1 if compaction else 0
        m.cfg[CFG["compaction_capture"]] = 1 if compaction_capture else 0
        m.cfg[CFG["kcompactd_concurrent"]] = 1 if kcompactd_concurrent else 0
        # True: Johannes' RFC as it stands alone (phase 2 from the zone's lists)
        m.cfg[CFG["pcpbuddy"]] = (PCPBUDDY_RFC if pcpbuddy is True else int(pcpbuddy)) \
            if pcpbuddy else 0
        m.cfg[CFG["slab_free_ppm"]] = int(slab_free_ppm)
        m.cfg[CFG["compaction_proactiveness"]] = int(compaction_proactiveness)
        if not compaction_proactiveness:
            # kcompactd(): MAX_SCHEDULE_TIMEOUT, it waits for a wake-up
            m.node[NODE["kcompactd_timeout_ns"]] = NEVER_NS
        m.cfg[CFG["extfrag_threshold"]] = int(extfrag_threshold)
        m.cfg[CFG["kswapd_rate"]] = parse_size(kswapd_rate, "kswapd_rate") >> 12
        if not 0 < float(kswapd_replay_run_ms) <= 10_000:
            raise ConfigError(f"kswapd_replay_run_ms={kswapd_replay_run_ms!r}: allowed (0, 10000]")
        m.cfg[CFG["kswapd_replay_run_ns"]] = int(float(kswapd_replay_run_ms) * 1e6)
        if not 0 <= float(compaction_migrate_us) <= 1_000_000:
            raise ConfigError(f"compaction_migrate_us={compaction_migrate_us!r}: allowed 0 to 1000000")
        if not 0 <= float(compaction_scan_ns) <= 1_000_000:
            raise ConfigError(f"compaction_scan_ns={compaction_scan_ns!r}: allowed 0 to 1000000")
        m.cfg[CFG["compaction_migrate_ns"]] = int(round(float(compaction_migrate_us) * 1000))
        m.cfg[CFG["compaction_scan_ns"]] = int(round(float(compaction_scan_ns)))
        m.cfg[CFG["migrate_untracked"]] = 1 if migrate_untracked else 0
        m.cfg[CFG["migrate_split_large"]] = 1 if migrate_split_large else 0
        m.cfg[CFG["spb"]] = 1 if spb_state is not None else 0
        m.cfg[CFG["prep_sets_request_bit"]] = 0 if spb_state is not None else 1
        m.cfg[CFG["keep_nofragment"]] = 1 if (spb_state is not None and self.spb_preset != "s1") else 0
        m.rng[0] = np.uint64((self.seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % (1 << 64) or 1)
        init_zones(m, self.geometry)
        self._init_pb_list()
        if min_free_kbytes is None:
            min_free_kbytes = default_min_free_kbytes(m)
        if not 128 <= int(min_free_kbytes) <= self.geometry.memory // 1024 // 4:
            raise ConfigError(f"min_free_kbytes={min_free_kbytes!r}: allowed 128 to a quarter of memory")
        self.min_free_kbytes = int(min_free_kbytes)
        setup_per_zone_wmarks(m, self.min_free_kbytes, int(watermark_scale_factor))
        if watermarks:
            self._set_watermarks(watermarks)
        setup_per_zone_lowmem_reserve(m)
        setup_pcp(m, self.cpus, static_high=KERNEL_VERSIONS[str(version)] == KV_6_1,
                  data_slice_pages=parse_size(per_cpu_data_slice_size,
                                              "per_cpu_data_slice_size") >> 12)
        for z in range(MAX_NR_ZONES):
            for s, e in free_ranges(self.geometry, z):
                free_pages_memory(m, z, s, e)
        if spb_state is not None:
            from .mm.spb.state import init_spb_from_mem
            init_spb_from_mem(m.spb, m)
        if early_unmovable is None:
            early_unmovable = (16 << 20) + self.geometry.memory // 400
        self.early_unmovable = int(early_unmovable)
        self._boot_unmovable()

    if __doc__:                     # None under python -OO
        __doc__ = __doc__.rstrip(" ") + switches_doc() + "    "

    # ------------------------------------------------------------ boot
    @property
    def spb_enabled(self):
        return self.spb_preset is not None

    def _init_pb_list(self):
        """Free-list owner per pageblock: its zone, or with the SPB allocator
        MAX_NR_ZONES + its SPB slot (per-SPB free_area, S1 §10)."""
        m = self.mem
        zone = m.pb_zone.astype(np.int64)
        owner = np.maximum(zone, 0)
        if self.spb_enabled:
            s = m.spb
            pb = np.arange(zone.size, dtype=np.int64)
            gidx = (pb << pageblock_order) >> 18
            ok = zone >= 0
            zc = np.where(ok, zone, 0)
            k = gidx - s.zone_base[zc]
            ok &= (k >= 0) & (k < s.zone_count[zc])
            owner = np.where(ok, MAX_NR_ZONES + s.zone_first[zc] + k, owner)
        m.pb_list[:] = owner.astype(np.int32)

    def _boot_unmovable(self):
        """Early kernel allocations (slab, page tables, per-cpu areas): GFP_KERNEL,
        orders 0/1/3 in a fixed 60/25/15 page mix, never freed."""
        pages = self.early_unmovable >> 12
        if pages <= 0:
            return
        rng = np.random.default_rng(self.seed ^ 0x5EED)
        per = np.array([1, 2, 8])
        n = np.maximum((pages * np.array([0.60, 0.25, 0.15]) / per).astype(np.int64), 0)
        orders = np.repeat(np.array([0, 1, 3], np.int64), n)
        rng.shuffle(orders)
        self.run_ops(orders, np.full(orders.size, gfpmod.GFP_KERNEL, np.int64),
                     cpu=(np.arange(orders.size) % self.cpus), owner=OWNER_EARLY_KERNEL)

    # ------------------------------------------------------------ alloc/free
    def alloc(self, order=0, gfp="GFP_KERNEL", cpu=0, owner=OWNER_API):
        """__alloc_pages(): return the first pfn of a 2^order block, or None."""
        order = self._order(order)
        cpu = self._cpu(cpu)
        pfn = int(self.run_ops([order], _gfp(gfp), cpu=cpu, owner=int(owner))[0])
        return None if pfn < 0 else pfn

    def free(self, pfn, order=None, cpu=0):
        """__free_pages(): free an allocated block; order defaults to its own."""
        if not isinstance(pfn, (int, np.integer)) or not 0 <= pfn < self.geometry.nr_pfns:
            raise FreeError(f"free: pfn {pfn!r} is not a page of this machine "
                            f"(0..{self.geometry.nr_pfns - 1:#x})")
        if order is None:
            order = int(self.mem.pg_order[pfn])
            if order < 0:
                order = 0
        order = self._order(order)
        err = int(self.run_ops([order], 0, pfns=[int(pfn)], cpu=self._cpu(cpu))[0])
        if err == EFREE_NOT_ALLOCATED:
            raise FreeError(f"free: pfn {pfn:#x} is not an allocated block head "
                            f"(double free, a tail page, or never allocated)")
        if err == EFREE_ORDER:
            raise FreeError(f"free: pfn {pfn:#x} was allocated with order "
                            f"{int(self.mem.pg_order[pfn])}, not {order}")
        if err == EFREE_RANGE:
            raise FreeError(f"free: pfn {pfn:#x} out of range")

    def run_ops(self, orders, gfps, pfns=None, cpu=0, owner=OWNER_API):
        """Run a batch in compiled code: pfns[i] < 0 (or pfns None) allocates
        orders[i] with gfps[i]; otherwise frees pfns[i].  Returns int64 results:
        the allocated pfn (-1 on failure) or a free's error code (0 = ok)."""
        orders = np.ascontiguousarray(orders, np.int64)
        n = orders.size
        if orders.size and (orders.min() < 0 or orders.max() > MAX_PAGE_ORDER):
            raise ConfigError(f"order out of range 0..{MAX_PAGE_ORDER} in batch")
        gfps = np.ascontiguousarray(np.broadcast_to(gfps, n), np.int64)
        pfns = np.full(n, -1, np.int64) if pfns is None else np.ascontiguousarray(pfns, np.int64)
        cpus = np.ascontiguousarray(np.broadcast_to(cpu, n), np.int64) % self.cpus
        owners = np.ascontiguousarray(np.broadcast_to(owner, n), np.int64)
        out = np.empty(n, np.int64)
        batch_alloc_free(self.mem, orders, gfps, pfns, cpus, owners, out)
        return out

    def alloc_contig_1g(self, owner=OWNER_API, cpu=0):
        """alloc_contig_pages() of one 1 GB (SPB-aligned) range, as hugetlb does
        for gigantic pages: zones from the highest, ranges from the lowest pfn
        whose pages are all free or movable.  Returns (pfn, pages migrated) or
        None.  Under the SPB allocator with the ``contig`` switch:
        sb_try_alloc_contig() instead."""
        if self.spb_enabled and self.mem.spb.cfg[_spb_cfg("SPB_CFG_CONTIG")]:
            return self.sb_try_alloc_contig(owner, cpu)
        from .mm import gfp as G
        from .mm.const import SUPERPAGEBLOCK_NR_PAGES, SUPERPAGEBLOCK_ORDER
        from .mm.contig import alloc_contig_range, find_contig_1g
        m = self.mem
        for z in reversed(self.populated_zones()):
            first = -(-int(m.zone_start[z]) >> SUPERPAGEBLOCK_ORDER)
            last = int(m.zone_end[z]) >> SUPERPAGEBLOCK_ORDER
            while first < last:
                start = int(find_contig_1g(m, first, last))
                if start < 0:
                    break
                moved = int(alloc_contig_range(m, start, SUPERPAGEBLOCK_NR_PAGES, int(owner),
                                               self._cpu(cpu), G.GFP_HIGHUSER_MOVABLE))
                if moved >= 0:
                    return start, moved
                first = (start >> SUPERPAGEBLOCK_ORDER) + 1
        return None

    def sb_try_alloc_contig(self, owner=OWNER_API, cpu=0):
        """sb_try_alloc_contig() (spbsim.mm.spb.contig): a 1 GB range from the
        SPB metadata.  Returns (pfn, pages migrated) or None."""
        from .mm.spb.contig import sb_try_alloc_contig
        return sb_try_alloc_contig(self.mem, owner, self._cpu(cpu))

    def free_contig_1g(self, pfn, cpu=0):
        """Free a range taken by alloc_contig_1g() (its SPB leaves spb_isolated
        first and is re-categorised as it becomes free)."""
        from .mm.const import SUPERPAGEBLOCK_NR_PAGES
        from .mm.contig import free_contig_range
        if self.mem.pg_order[pfn] != MAX_PAGE_ORDER or not self.mem.pg_flags[pfn] & PG_head:
            raise FreeError(f"free_contig_1g: pfn {pfn:#x} is not a range from alloc_contig_1g")
        if self.spb_enabled:
            from .mm.spb.lists import spb_set_contig_allocated_call
            s = self.mem.spb
            z = int(self.mem.pb_zone[pfn >> pageblock_order])
            k = (int(pfn) >> 18) - int(s.zone_base[z])
            if 0 <= k < int(s.zone_count[z]):
                i = int(s.zone_first[z]) + k
                if s.contig_allocated[i]:
                    spb_set_contig_allocated_call(s, i, False, int(self.mem.cur[1]))
        free_contig_range(self.mem, int(pfn), SUPERPAGEBLOCK_NR_PAGES, self._cpu(cpu))

    # ------------------------------------------------------------ SPB allocator
    def spb_run_pending(self, now_ns=None, cpu=0):
        """Run the SPB allocator's queued work (defrag workers, slab shrink,
        deferred evacuation) at simulated time now_ns (default: the clock)."""
        if not self.spb_enabled:
            return 0
        from .mm.spb.work import spb_run_pending
        if now_ns is not None:
            self.mem.cur[1] = int(now_ns)
        return int(spb_run_pending(self.mem, int(self.mem.cur[1]), self._cpu(cpu)))

    def spb_dump(self, extended=False):
        """The debugfs ``superpageblocks`` file (S1 §7.2)."""
        if not self.spb_enabled:
            return ""
        from .mm.spb.debug import spb_dump
        return spb_dump(self.mem.spb, self.mem, extended=extended)

    def compact_memory(self, cpu=0, zones=None, cpus=None):
        """/proc/sys/vm/compact_memory: full sync compaction of every zone
        (``zones``: of these zone indices only), written on ``cpu``.
        ``cpus``: where the writing task runs meanwhile, as (pages, cpu)
        pairs: the sources of a zone's first ``pages`` migrated pages are
        freed on that ``cpu``, the next pair's up to its count, and so on;
        past the last count, its cpu (at most CC_CPUS_MAX pairs).  A zone's
        compaction paused by compact_memory_zone is finished first."""
        from .mm.state import CCR_ACTIVE, CCR_SLOT_WRITE, CCR_ZONE
        m = self.mem
        if m.cc_resume[CCR_SLOT_WRITE, CCR_ACTIVE]:
            self.compact_memory_zone(int(m.cc_resume[CCR_SLOT_WRITE, CCR_ZONE]), cpu)
        for z in self.populated_zones():
            if zones is None or z in zones:
                self.compact_memory_zone(z, cpu, cpus)

    def compact_memory_zone(self, zone, cpu=0, cpus=None, budget_ns=None):
        """compact_memory's compaction of one zone (``cpu``, ``cpus`` as for
        compact_memory).  ``budget_ns``: [SIM] the time it may take from its
        start, counted as kcompactd's run is (compaction_scan_ns per page
        scanned, compaction_migrate_ns per page migrated): unfinished then,
        it pauses, and the next call for the zone resumes it (with a larger
        budget, or None to finish it).  Returns True once it is done."""
        from itertools import pairwise

        from .mm import compaction as C
        from .mm.const import MIGRATE_UNMOVABLE
        from .mm.state import (
            CC_CPUS_MAX,
            CCR_ACTIVE,
            CCR_BUDGET_NS,
            CCR_SLOT_WRITE,
            CCR_ZONE,
        )
        cpu = self._cpu(cpu)
        if zone not in self.populated_zones():
            raise ConfigError(f"zone={zone!r}: not a populated zone {self.populated_zones()}")
        sched = [] if cpus is None else [(int(n), self._cpu(c)) for n, c in cpus]
        if len(sched) > CC_CPUS_MAX or any(n < 0 for n, _ in sched) \
                or any(b[0] < a[0] for a, b in pairwise(sched)):
            raise ConfigError(f"cpus={cpus!r}: at most {CC_CPUS_MAX} (pages, cpu) pairs, "
                              f"pages not negative and not decreasing")
        if budget_ns is not None and not (isinstance(budget_ns, (int, np.integer))
                                          and budget_ns >= 0):
            raise ConfigError(f"budget_ns={budget_ns!r}: a whole number of ns >= 0, or None")
        m = self.mem
        r = m.cc_resume[CCR_SLOT_WRITE]
        paused = int(r[CCR_ACTIVE]) != 0
        if paused and int(r[CCR_ZONE]) != zone:
            raise ConfigError(f"zone {int(r[CCR_ZONE])}'s compaction is paused: "
                              f"finish it before zone {zone}'s")
        for i, (n, c) in enumerate(sched):
            m.cc_cpus[i, 0], m.cc_cpus[i, 1] = n, c
        m.cc_n[1] = len(sched)
        flags = C.CC_SYNC | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP
        if budget_ns is not None or paused:
            flags |= C.CC_BUDGET
            r[CCR_BUDGET_NS] = -1 if budget_ns is None else int(budget_ns)
        try:
            # compact_node(pgdat, false): MIGRATE_SYNC, whole zone, skip hints ignored
            C.compact_zone(m, zone, -1, MIGRATE_UNMOVABLE, flags, cpu, -1)
        finally:
            m.cc_n[1] = 0
        return int(r[CCR_ACTIVE]) == 0

    def drain_pcp(self):
        """drain_all_pages(): return every per-cpu page to the buddy lists."""
        drain_all_pages(self.mem)

    def _order(self, order):
        if not isinstance(order, (int, np.integer)) or not 0 <= order <= MAX_PAGE_ORDER:
            raise ConfigError(f"order={order!r}: allowed 0 to {MAX_PAGE_ORDER} (MAX_PAGE_ORDER)")
        return int(order)

    def _cpu(self, cpu):
        if not isinstance(cpu, (int, np.integer)) or not 0 <= cpu < self.cpus:
            raise ConfigError(f"cpu={cpu!r}: allowed 0 to {self.cpus - 1}")
        return int(cpu)

    # ------------------------------------------------------------ checks
    def check(self):
        """Run the DEBUG_VM-style checker; raise InvariantError on a violation."""
        code, pfn, a, b = check_mem(self.mem)
        if code != 0:
            msg = VIOLATIONS.get(int(code), "unknown violation {a} {b}").format(a=int(a), b=int(b))
            where = f" at pfn {int(pfn):#x}" if pfn >= 0 else ""
            raise InvariantError(f"DEBUG_VM: {msg}{where}")
        if self.spb_enabled:
            from .mm.spb.debug import format_spb_violation, spb_debug_check
            r = spb_debug_check(self.mem.spb, self.mem)
            if int(r[0]) != 0:
                raise InvariantError(f"DEBUG_VM (spb_debug_check): {format_spb_violation(r)}")

    def checksum(self):
        """SHA-256 over the whole allocator state (determinism checks)."""
        h = hashlib.sha256()
        for name in ("pg_next", "pg_prev", "pg_order", "pg_flags", "pg_owner", "pg_obj",
                     "pg_list_mt", "pb_mt",
                     "pb_flags", "fa_head", "fa_tail", "fa_nr", "nr_free", "zstat",
                     "pcp_head", "pcp_tail", "pcp", "vm", "sim", "node", "lru_head",
                     "lru_tail", "lru_pages", "owner_pages", "obj_pfn", "obj_pc", "pc_pfn",
                     "pc_next", "pc_n"):
            h.update(getattr(self.mem, name).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------ views
    def populated_zones(self):
        return [z for z in range(MAX_NR_ZONES) if self.mem.zstat[z, ZS_MANAGED] > 0]

    def zone_names(self):
        return [ZONE_NAMES[z] for z in self.populated_zones()]

    def block_counts(self):
        """Pageblocks per zone and migratetype ("Number of blocks type")."""
        zs = self.populated_zones()
        out = np.zeros((len(zs), MIGRATE_TYPES), np.int64)
        for i, z in enumerate(zs):
            sel = self.mem.pb_zone == z
            out[i] = np.bincount(self.mem.pb_mt[sel], minlength=MIGRATE_TYPES)[:MIGRATE_TYPES]
        return out

    def buddyinfo(self):
        zs = self.populated_zones()
        return procfs.render_buddyinfo(self.zone_names(), self.mem.nr_free[zs])

    def pagetypeinfo(self):
        zs = self.populated_zones()
        free = np.transpose(self.mem.fa_nr[zs], (0, 2, 1))
        return procfs.render_pagetypeinfo(self.zone_names(), free, self.block_counts(),
                                          MIGRATETYPE_NAMES, pageblock_order)

    def unusable_index(self):
        return procfs.render_unusable_index(self.zone_names(), self.mem.nr_free[self.populated_zones()])

    def extfrag_index(self):
        return procfs.render_extfrag_index(self.zone_names(), self.mem.nr_free[self.populated_zones()])

    def vmstat_counters(self):
        """Modelled /proc/vmstat counters in the kernel's order and names."""
        c = {"nr_free_pages": int(self.mem.zstat[:, ZSTAT["nr_free_pages"]].sum())}
        c["nr_free_pages_blocks"] = int(self.mem.zstat[:, ZSTAT["nr_free_pages_blocks"]].sum())
        for i, name in enumerate(VMSTAT_NAMES):
            c[name] = int(self.mem.vm[i])
        return c

    def vmstat(self):
        return procfs.render_vmstat(self.vmstat_counters())

    def sim_counters(self):
        return {name: int(self.mem.sim[i]) for i, name in enumerate(SIMSTAT_NAMES)}

    def zoneinfo(self):
        zones = {}
        m = self.mem
        for z in self.populated_zones():
            zs = m.zstat[z]
            boost = int(zs[ZSTAT["watermark_boost"]])
            zones[ZONE_NAMES[z]] = {
                "free": int(zs[ZSTAT["nr_free_pages"]]),
                "boost": boost,
                "min": int(zs[ZSTAT["wmark_min"]]) + boost,
                "low": int(zs[ZSTAT["wmark_low"]]) + boost,
                "high": int(zs[ZSTAT["wmark_high"]]) + boost,
                "promo": int(zs[ZSTAT["wmark_promo"]]) + boost,
                "spanned": int(zs[ZSTAT["spanned"]]),
                "present": int(zs[ZSTAT["present"]]),
                "managed": int(zs[ZSTAT["managed"]]),
                "cma": 0,
                "protection": [int(x) for x in m.lowmem_reserve[z]] + [0, 0],
                "stats": {"nr_free_pages": int(zs[ZSTAT["nr_free_pages"]])},
                "pagesets": [{"cpu": c, "count": int(m.pcp[z, c, PCP_COUNT]),
                              "high": int(m.pcp[z, c, PCP_HIGH]),
                              "batch": int(m.pcp[z, c, PCP_BATCH])} for c in range(self.cpus)],
                "start_pfn": int(m.zone_start[z]),
            }
        return procfs.render_zoneinfo(zones)

    def free_blocks(self, order):
        """Free buddy blocks able to serve ``order`` now (sum over orders >= order)."""
        nr = self.mem.nr_free
        return int(sum(int(nr[:, o].sum()) << (o - order) for o in range(order, NR_PAGE_ORDERS)))

    def pageblock(self, pfn):
        """What a pageblock holds: type, content bits and a page census."""
        m = self.mem
        if not 0 <= pfn < self.geometry.nr_pfns:
            raise ConfigError(f"pfn {pfn!r} is not a page of this machine")
        pb = pfn >> pageblock_order
        start = pb << pageblock_order
        z = int(m.pb_zone[pb])
        info = {"pageblock": pb, "start_pfn": start, "zone": ZONE_NAMES[z] if z >= 0 else None,
                "migratetype": MIGRATETYPE_NAMES[int(m.pb_mt[pb])] if z >= 0 else None,
                "flags": [n for bit, n in PB_FLAG_NAMES if m.pb_flags[pb] & bit]}
        census = {"free": 0, "pcp": 0, "reserved": 0, "Unmovable": 0, "Movable": 0,
                  "Reclaimable": 0}
        f = m.pg_flags[start:start + pageblock_nr_pages]
        o = m.pg_order[start:start + pageblock_nr_pages]
        p = 0
        while p < pageblock_nr_pages and z >= 0:
            fl = int(f[p])
            if fl & (PG_buddy | PG_pcp | PG_head):
                n = 1 << int(o[p])
                if fl & PG_buddy:
                    census["free"] += n
                elif fl & PG_pcp:
                    census["pcp"] += n
                else:
                    census[MIGRATETYPE_NAMES[(fl >> PG_MT_SHIFT) & 3]] += n
                p += n
            else:
                if fl & PG_reserved:
                    census["reserved"] += 1
                p += 1
        info["pages"] = census
        return info

    def _set_watermarks(self, watermarks):
        """Zone watermarks as given (see the class docstring); promo, when
        not given, is high plus the high - low gap, as __setup_per_zone_wmarks."""
        m = self.mem
        for name, marks in dict(watermarks).items():
            if name not in ZONE_NAMES:
                raise ConfigError(f"watermarks: unknown zone {name!r} (allowed {', '.join(ZONE_NAMES)})")
            z = ZONE_NAMES.index(name)
            try:
                marks = [int(v) for v in marks]
            except (TypeError, ValueError):
                raise ConfigError(f"watermarks[{name}]={marks!r}: (min, low, high[, promo]) "
                                  f"as integers") from None
            if len(marks) == 3:
                marks.append(marks[2] + marks[2] - marks[1])
            if len(marks) != 4 or not 0 <= marks[0] <= marks[1] <= marks[2] <= marks[3] \
                    or marks[3] > int(m.zstat[z, ZS_MANAGED]):
                raise ConfigError(f"watermarks[{name}]={tuple(marks)!r}: (min, low, high[, promo]) "
                                  f"must be non-decreasing and at most the zone's managed pages")
            for i, v in enumerate(marks):
                m.zstat[z, ZSTAT["wmark_min"] + i] = v

    def trace_records(self):
        """The kmem event log as an int64 array [n, 9] (see spbsim.mm.state.EV_WIDTH)."""
        return self.mem.ev[: int(self.mem.ev_n[0])].copy()

    def state_bytes(self):
        """Bytes of every state array, each counted once (the SPB state shares
        the taint log and the current context with the machine's)."""
        seen = {}
        for f in self.mem._fields:
            a = getattr(self.mem, f)
            for x in (a if f == "spb" else (a,)):
                seen[id(x)] = x.nbytes
        return sum(seen.values())

    def summary(self):
        """A dict a kernel developer reads first."""
        m = self.mem
        return {
            "memory": self.geometry.memory,
            "managed_pages": int(m.zstat[:, ZS_MANAGED].sum()),
            "free_pages": int(m.zstat[:, ZSTAT["nr_free_pages"]].sum()),
            "free_2m_blocks": self.free_blocks(pageblock_order),
            "free_4m_blocks": self.free_blocks(MAX_PAGE_ORDER),
            "blocks_per_type": {MIGRATETYPE_NAMES[t]: int(self.block_counts()[:, t].sum())
                                for t in range(MIGRATE_TYPES)},
            "vmstat": self.vmstat_counters(),
            "sim": self.sim_counters(),
            "fallback_pairs": self.fallback_pairs(),
        }

    def fallback_pairs(self):
        """Fallbacks by (requested -> fallback) migratetype pair: claim (the
        block was taken over; claim_whole counts those that were whole
        >= pageblock_order buddies), steal (the block kept its type: it is now
        polluted), as the bpftrace extfrag counters report them."""
        out = {}
        fb = self.mem.fb_stat
        for a in range(3):
            for b in range(3):
                if a == b:
                    continue
                row = {"claim": int(fb[0, a, b]), "steal": int(fb[1, a, b]),
                       "claim_whole": int(fb[2, a, b])}
                if any(row.values()):
                    out[f"{MIGRATETYPE_NAMES[a]}->{MIGRATETYPE_NAMES[b]}"] = row
        return out
