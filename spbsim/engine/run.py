"""Run a scenario: build the machine, feed it each tick's requests, let
kswapd/kcompactd work, sample time series, write the results directory.

    sim = Simulation(load_scenario("kbuild"), out_dir="results/kbuild")
    summary = sim.run()
"""
import math
import time

import numpy as np

from ..observe.spb_report import spb_sample_columns
from ..observe.taints import TaintLog
from ..mm.state import SIMSTAT, TL, VM_PGALLOC, VMSTAT
from ..mm.const import MAX_NR_ZONES, ZONE_NAMES
from ..policy import Policy
from ..machine import Machine
from ..mm.const import (MIGRATE_TYPES, MIGRATETYPE_NAMES, NR_PAGE_ORDERS)
from ..mm.state import (CFG, LRU_NAMES, NODE_NAMES, PCP_COUNT, SIMSTAT_NAMES,
                        VMSTAT_NAMES, ZS_MANAGED, ZSTAT)
from ..observe.census import (hugepage_availability, movable_order_census, pageblock_census,
                              reserved_pageblocks, spb_census)
from ..workload.kinds import HUGETLB, KINDS
from .sources import FIRST_SOURCE_OWNER, RequestStream, fallback_gfp, kind_lru
from .state import ES, KIND_CODES, SRC_STATS, new_eng
from ..mm.workqueue import VMSTAT_INTERVAL_NS, WQ_VMSTAT_UPDATE, queue_work
from .step import advance_to, run_requests

_TL_T, _TL_EVENT, _TL_INDEX, _TL_ZONE = TL["t_ns"], TL["event"], TL["index"], TL["zone"]

__all__ = ["Simulation", "SLAB_OBJECT_RECLAIM"]

_VM_MIGRATE_OK = VMSTAT["pgmigrate_success"]
_SIM_SPLIT = SIMSTAT["sim_migrate_split"]

#: [SIM] chance that one shrinker pass frees a given slab object; a slab page is
#: freed when all its objects are: probability SLAB_OBJECT_RECLAIM ** objects_per_slab
SLAB_OBJECT_RECLAIM = 0.8


def _max_scale(sc, s):
    """The largest rate multiplier a source sees (phases and bursts)."""
    f = 1.0
    for ph in sc.phases:
        f = max(f, f * ph.scale.get(s.name, 1.0))
    return f * max(1.0, s.burst_factor)


class Simulation:
    """One scenario under one policy."""

    def __init__(self, scenario, policy=None, check=False, progress=None, writer=None,
                 machine_overrides=None):
        self.sc = sc = scenario
        self.policy = policy or sc.policy
        policy_kw = Policy.parse(self.policy).machine_kwargs()
        self.check = check
        self.progress = progress
        self.writer = writer
        mem_bytes = sc.memory_bytes
        managed_guess = mem_bytes >> 12
        # live timed objects: bounded by memory, estimated from rates x lifetimes
        est = 0.0
        for s in sc.sources:
            if KINDS[s.kind].handler == HUGETLB:
                continue
            life = s.lifetime.mean_s
            if math.isfinite(life):
                peak = s.rate_per_s * _max_scale(sc, s)
                est += peak * life * 3
                if KINDS[s.kind].fallback_gfp:        # base-page fallbacks
                    est += peak * life * (1 << int(s.orders.max()))
        cap = int(min(managed_guess, est + 100_000))
        kw = dict(memory=sc.memory, cpus=sc.cpus, version=sc.kernel_version, seed=sc.seed,
                  obj_capacity=cap, **sc.machine_switches())
        if sc.early_unmovable is not None:
            kw["early_unmovable"] = sc.early_unmovable
        kw.update(policy_kw)
        if sc.spb_set:
            if "spb" not in kw:
                from ..errors import ConfigError
                raise ConfigError(f"{sc.name}: spb switches ({', '.join(k for k, _ in sc.spb_set)}) "
                                  f"need an spb policy, not {self.policy!r}")
            kw["spb_set"] = dict(sc.spb_set) | dict(kw.get("spb_set") or {})
        kw.update(machine_overrides or {})
        if sc.memory_map is not None:
            # the map lays the machine out: memory, low memory, holes, reserved ranges
            from ..errors import ConfigError
            clash = [k for k in ("memory", "low_memory", "holes", "reserved")
                     if k in (machine_overrides or {})]
            if clash:
                raise ConfigError(f"{sc.name}: memory_map {sc.memory_map.name!r} sets "
                                  f"{', '.join(clash)}; the machine overrides cannot")
            kw.update(sc.memory_map.machine_kwargs(
                **{k: kw[k] for k in ("firmware_reserved", "kernel_image",
                                      "memmap_bytes_per_page") if k in kw}))
        self.machine = Machine(**kw)
        m = self.machine.mem
        self.eng = e = new_eng(cap)
        self.stream = RequestStream(sc)
        managed = int(m.zstat[:, ZS_MANAGED].sum())
        slab_n = [s.objects_per_slab for s in sc.sources if "objects_per_slab" in KINDS[s.kind].keys]
        if slab_n:
            m.cfg[CFG["slab_free_ppm"]] = int(1e6 * SLAB_OBJECT_RECLAIM ** max(slab_n))
        self.source_owner = {}
        for i, s in enumerate(sc.sources):
            o = FIRST_SOURCE_OWNER + i
            self.source_owner[s.name] = o
            info = KINDS[s.kind]
            m.owner_lru[o] = kind_lru(info)
            e.src_gfp[o] = s.gfp
            e.src_large_gfp[o] = s.gfp | info.large_gfp
            e.src_kind[o] = KIND_CODES[s.kind]
            e.src_pinned_ppm[o] = int(round(s.pinned * 1e6))
            e.src_fallback_gfp[o] = fallback_gfp(s.kind, s.gfp)
            if s.limit_fraction is not None:
                e.src_limit[o] = int(s.limit_fraction * managed)
            elif s.limit_bytes is not None:
                e.src_limit[o] = s.limit_bytes >> 12
        self.taints = TaintLog(m, {o: name for name, o in self.source_owner.items()})
        self._reserved_pb = reserved_pageblocks(m)
        queue_work(m, WQ_VMSTAT_UPDATE, 0, VMSTAT_INTERVAL_NS)
        self.hugetlb = [s for s in sc.sources if KINDS[s.kind].handler == HUGETLB]
        self.gb_held = []          # (free_at_s, pfn)
        self.gb_next = {}          # source -> next attempt time
        self.gb_rng = np.random.Generator(np.random.PCG64([sc.seed, 0x1C0]))
        # migrated_pages: the successful attempts' range migrations;
        # attempt_migrated_pages: every page migrated while an attempt ran,
        # failed ones and their targets' direct compaction included (the cost
        # per 1 GB obtained); splits / splits_refused: large blocks (any
        # order) split for want of a target, and splits refused for want of pieces
        self.gb_stats = {"attempts": 0, "success": 0, "migrated_pages": 0,
                         "attempt_migrated_pages": 0, "splits": 0, "splits_refused": 0}
        self.requests_done = 0
        self.t_s = 0.0
        self._alloc_hist_t = []
        self._alloc_hist = []
        # fresh_taints_while_stuck: SPB taints while another SPB of the zone
        # was stuck (stuck as of the previous sample)
        self.fresh_taints = []
        self._stuck_prev = None
        self._taint_chunk = 0

    # ------------------------------------------------------------------ run
    def run(self):
        sc = self.sc
        m, e = self.machine.mem, self.eng
        tick = sc.tick_s
        n_ticks = int(math.ceil(sc.duration_s / tick - 1e-9))
        next_sample = 0.0
        t_wall = time.perf_counter()
        interrupted = False
        try:
            for k in range(n_ticks):
                t0, t1 = k * tick, min((k + 1) * tick, sc.duration_s)
                if t0 >= next_sample - 1e-12:
                    self._sample(t0)
                    next_sample += sc.sample_interval_s
                req = self.stream.tick(t0, t1)
                if req["t_ns"].size:
                    self.requests_done += run_requests(m, e, req["t_ns"], req["src"], req["order"],
                                                       req["cpu"], req["life_ns"], sc.cpus)
                advance_to(m, e, int(round(t1 * 1e9)), sc.cpus)
                self._hugetlb(t0, t1)
                if m.tl_n[0] > self.taints.half:
                    self.taints.drain()
                self.t_s = t1
                if self.check:
                    self.machine.check()
                if self.progress:
                    self.progress(t1, sc.duration_s, self.requests_done)
        except KeyboardInterrupt:
            interrupted = True
        self._sample(self.t_s)
        wall = time.perf_counter() - t_wall
        return self.summary(wall, interrupted)

    # ------------------------------------------------------------------ 1 GB
    def _hugetlb(self, t0, t1):
        """hugetlb_1g sources: one contiguous 1 GB attempt per interval
        (alloc_contig_range), freed after the source's lifetime."""
        for s in self.hugetlb:
            nxt = self.gb_next.get(s.name, s.start_s)
            while nxt < t1 and nxt < s.stop_s:
                nxt += s.interval_s
                self.gb_next[s.name] = nxt
                self.gb_stats["attempts"] += 1
                # drawn for every attempt from its own generator: the stream
                # stays independent of whether the attempt succeeds
                life = float(s.lifetime.sample(self.gb_rng, 1)[0])
                mem = self.machine.mem
                before = (int(mem.vm[_VM_MIGRATE_OK]), int(mem.sim[_SIM_SPLIT]),
                          int(mem.pc_n[2]))
                got = self.machine.alloc_contig_1g(owner=self.source_owner[s.name])
                self.gb_stats["attempt_migrated_pages"] += int(mem.vm[_VM_MIGRATE_OK]) - before[0]
                self.gb_stats["splits"] += int(mem.sim[_SIM_SPLIT]) - before[1]
                self.gb_stats["splits_refused"] += int(mem.pc_n[2]) - before[2]
                if got is not None:
                    pfn, migrated = got
                    self.gb_stats["success"] += 1
                    self.gb_stats["migrated_pages"] += migrated
                    self.gb_held.append((t1 + life, pfn))
        keep = []
        for free_at, pfn in self.gb_held:
            if free_at <= t1:
                self.machine.free_contig_1g(pfn)
            else:
                keep.append((free_at, pfn))
        self.gb_held = keep

    # ------------------------------------------------------------------ sampling
    def zone_alloc_since(self, z, t_ns):
        """Pages allocated in zone z since simulated time t_ns (sample resolution)."""
        import bisect
        m = self.machine.mem
        k = bisect.bisect_left(self._alloc_hist_t, t_ns)
        if k >= len(self._alloc_hist):
            return 0
        return int(m.vm[VM_PGALLOC + z] - self._alloc_hist[k][z])

    def _fresh_taints_while_stuck(self, t_s):
        """The harm patch 43 fixes, measured directly: each SPB turning
        tainted since the last sample (the taint log) while another tainted
        SPB of its zone was stuck at that sample (stuck_spbs, sample
        resolution) is recorded with its time."""
        from ..mm.state import TL_SPB_TAINTED
        from ..observe.spb_report import stuck_spbs
        spb = self.machine.mem.spb
        chunks = self.taints.chunks[self._taint_chunk:]
        self._taint_chunk = len(self.taints.chunks)
        stuck = self._stuck_prev
        if stuck is not None and stuck.size:
            for c in chunks:
                for r in c[c[:, _TL_EVENT] == TL_SPB_TAINTED]:
                    i, z = int(r[_TL_INDEX]), int(r[_TL_ZONE])
                    others = [int(j) for j in stuck if j != i and spb.zone[j] == z]
                    if others:
                        self.fresh_taints.append({"t_s": round(int(r[_TL_T]) / 1e9, 3), "spb": i,
                                                  "zone": ZONE_NAMES[z], "stuck_spbs": others})
        self._stuck_prev = stuck_spbs(spb, int(round(t_s * 1e9)), self.zone_alloc_since)

    def _sample(self, t_s):
        # per-zone pgalloc history: "allocations keep arriving" in stuck_spbs()
        m = self.machine.mem
        self.taints.drain()
        self._alloc_hist_t.append(int(round(t_s * 1e9)))
        self._alloc_hist.append(m.vm[VM_PGALLOC:VM_PGALLOC + MAX_NR_ZONES].copy())
        if self.machine.spb_enabled:
            self._fresh_taints_while_stuck(t_s)
        if self.writer is None:
            return
        self.writer.append_sample(self.sample_row(t_s))

    def sample_row(self, t_s):
        m, e = self.machine.mem, self.eng
        row = {"t_s": float(t_s), "requests": int(self.requests_done)}
        row["free_pages"] = int(m.zstat[:, ZSTAT["nr_free_pages"]].sum())
        nr = m.nr_free.sum(axis=0)
        for o in range(NR_PAGE_ORDERS):
            row[f"free_blocks_o{o}"] = int(nr[o])
        fa = m.fa_nr.sum(axis=0)           # [order, mt]
        pages_by_mt = (fa * (1 << np.arange(NR_PAGE_ORDERS))[:, None]).sum(axis=0)
        present = m.pb_zone >= 0
        blocks = np.bincount(m.pb_mt[present], minlength=MIGRATE_TYPES)
        for t in range(MIGRATE_TYPES):
            name = MIGRATETYPE_NAMES[t].lower()
            row[f"free_pages_{name}"] = int(pages_by_mt[t])
            row[f"blocks_{name}"] = int(blocks[t])
        cen = pageblock_census(m)
        row["polluted_blocks"] = sum(v["polluted"] for v in cen.values())
        row["polluted_movable_blocks"] = cen["Movable"]["polluted"]
        row.update({k: v for k, v in hugepage_availability(m, self._reserved_pb).items()})
        spbs = spb_census(m)
        for k in ("total", "tainted", "clean", "empty"):
            row[f"spb_{k}"] = sum(v[k] for v in spbs.values())
        row.update(spb_sample_columns(m.spb, int(round(t_s * 1e9)), self.zone_alloc_since))
        for i, n in enumerate(LRU_NAMES):
            row[f"lru_{n}_pages"] = int(m.lru_pages[i])
        row["pcp_pages"] = int(m.pcp[:, :, PCP_COUNT].sum())
        for i, n in enumerate(VMSTAT_NAMES):
            row[n] = int(m.vm[i])
        for i, n in enumerate(SIMSTAT_NAMES):
            row[n] = int(m.sim[i])
        for n in ("kswapd_runs", "direct_reclaims", "kcompactd_runs"):
            row[n] = int(m.node[NODE_NAMES.index(n)])
        for name, o in self.source_owner.items():
            row[f"src_{name}_pages"] = int(m.owner_pages[o])
            row[f"src_{name}_fails"] = int(e.src_stat[o, ES["fails"]])
        row["gb_attempts"] = self.gb_stats["attempts"]
        row["gb_success"] = self.gb_stats["success"]
        row["gb_held"] = len(self.gb_held)
        return row

    # ------------------------------------------------------------------ summary
    def summary(self, wall_s, interrupted):
        mach = self.machine
        m, e = mach.mem, self.eng
        s = mach.summary()
        s["census"] = pageblock_census(m)
        s["hugepages"] = hugepage_availability(m, self._reserved_pb)
        s["movable_order"] = movable_order_census(m, self._reserved_pb)
        s["spb"] = spb_census(m)
        for k in ("total", "tainted", "clean", "empty"):
            s[f"spb_{k}"] = sum(v[k] for v in s["spb"].values())
        s["scenario"] = self.sc.name
        s["policy"] = self.policy
        s["seed"] = self.sc.seed
        s["simulated_s"] = round(self.t_s, 6)
        s["wall_s"] = round(wall_s, 3)
        s["requests"] = int(self.requests_done)
        s["requests_per_s"] = round(self.requests_done / wall_s) if wall_s > 0 else None
        s["request_checksum"] = f"{self.stream.checksum:016x}"
        s["interrupted"] = interrupted
        s["gb_pages_free"] = s["hugepages"]["1g_free"]
        s["gb_pages_obtainable"] = s["hugepages"]["1g_obtainable"]
        s["hugetlb_1g"] = dict(self.gb_stats, held=len(self.gb_held))
        if mach.spb_enabled:
            from ..observe.spb_report import spb_allocator_summary
            s["spb_allocator"] = sa = spb_allocator_summary(mach, int(round(self.t_s * 1e9)),
                                                             self.zone_alloc_since)
            sa["fresh_taints_while_stuck"] = list(self.fresh_taints)
            s["stuck_spbs"] = sa["stuck_spbs"]
            s["spb_passes"] = sa["outcomes"]
        thp_a, thp_f = s["vmstat"]["thp_fault_alloc"], s["vmstat"]["thp_fault_fallback"]
        s["thp_fault_success_rate"] = round(thp_a / (thp_a + thp_f), 4) if thp_a + thp_f else None
        s["lru_pages"] = {n: int(m.lru_pages[i]) for i, n in enumerate(LRU_NAMES)}
        s["sources"] = {name: {k: int(e.src_stat[o, ES[k]]) for k in SRC_STATS}
                        | {"pages_now": int(m.owner_pages[o])}
                        for name, o in self.source_owner.items()}
        s["node"] = {n: int(m.node[i]) for i, n in enumerate(NODE_NAMES)}
        s["taints"] = self.taints.summary()
        return s
