"""Placement replay of a real kernel trace: apply the kernel's own decisions.

The trace says which pages were taken from and returned to the buddy free
lists; this module applies exactly those operations to a
:class:`~spbsim.machine.Machine` whose initial free memory is the ``start``
snapshot's kpageflags, and compares the resulting buddyinfo with every
periodic snapshot.  ``replay_placement(trace, snapshots_dir)``,
``format_table(result)``; ``python -m spbsim.trace.replay RUN_DIR``.
Start state, event rules and comparison points: docs/replay.md.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from spbsim.errors import SpbsimError
from spbsim.mm.const import (MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_TYPES,
                             MIGRATE_UNMOVABLE, NR_PAGE_ORDERS, PB_has_movable,
                             PB_has_reclaimable, PB_has_unmovable, PG_head, PG_MT_SHIFT,
                             ZONE_NAMES, pageblock_nr_pages, pageblock_order)
from spbsim.mm.state import (PCP_COUNT, ZS_FREE_HIGHATOMIC, ZS_NR_FREE,
                             ZS_NR_FREE_BLOCKS)
from spbsim.observe import procfs
from spbsim.trace import placement as pl
from spbsim.trace.kpageflags import (KPF_ANON, KPF_BUDDY, KPF_COMPOUND_TAIL, KPF_LRU,
                                        KPF_MMAP, KPF_NOPAGE, KPF_PGTABLE, KPF_RESERVED,
                                        KPF_SLAB, KPF_SWAPBACKED, KPF_SWAPCACHE,
                                        free_blocks_from_kpageflags, load_kpageflags)
from spbsim.trace.ftrace import (OTHER_EVENT, TRACING_MARK_WRITE, TraceReader,
                                   TracingMarkWrite)

__all__ = ["replay_placement", "PlacementReplay", "oracle_machine", "read_index",
           "initial_block_types", "page_classes", "buddyinfo_distance", "make_ops",
           "format_table", "main"]

_MARK_RE = re.compile(r"oracle_snap_(begin|end) seq=(\d+) tag=(\S+)")


# ---------------------------------------------------------------- inputs

def read_index(snapshots_dir) -> list[dict]:
    """snapshots/index.tsv -> [{seq, tag, t_first (s or None), dir (Path)}]."""
    snapshots_dir = Path(snapshots_dir)
    idx = snapshots_dir / "index.tsv"
    out = []
    if idx.exists():
        lines = idx.read_text().splitlines()
        head = lines[0].split("\t")
        for line in lines[1:]:
            if not line.strip():
                continue
            row = dict(zip(head, line.split("\t")))
            ns = row.get("mono_ns_first_file", "")
            out.append({"seq": int(row["seq"]), "tag": row["tag"],
                        "t_first": int(ns) / 1e9 if ns.strip().isdigit() else None,
                        "dir": snapshots_dir / row["dir"]})
    else:       # no index: NNNN-tag directories
        for d in sorted(snapshots_dir.iterdir()):
            m = re.match(r"(\d+)-(.+)$", d.name)
            if d.is_dir() and m:
                out.append({"seq": int(m.group(1)), "tag": m.group(2), "t_first": None, "dir": d})
    return sorted(out, key=lambda r: r["seq"])


def oracle_machine(manifest: dict | None = None, *, memory=None, low_memory=None, cpus=None):
    """A Machine with the recorded geometry and nothing allocated by spbsim itself.

    ``Machine(memory, low_memory, cpus, pcp=False, early_unmovable=0,
    firmware_reserved=0, kernel_image=0, memmap_bytes_per_page=0)``; memory
    sizes and cpus come from manifest['machine'] unless given.  Raises
    SpbsimError if a recorded zone's present pages do not fit the simulated one.
    """
    from spbsim.machine import Machine
    mach = (manifest or {}).get("machine", {})
    if memory is None:
        if "ram_mb" not in mach:
            raise SpbsimError("manifest has no machine.ram_mb: pass memory=")
        memory = f"{int(mach['ram_mb'])}M"
    if low_memory is None and "ram_below_4g_mb" in mach:
        low_memory = f"{int(mach['ram_below_4g_mb'])}M"
    if cpus is None:
        cpus = int(mach.get("vcpus", 2))
    kw = {}
    sysctl = mach.get("sysctl_vm", {})
    if "min_free_kbytes" in sysctl:
        kw["min_free_kbytes"] = int(sysctl["min_free_kbytes"])
    m = Machine(memory=memory, low_memory=low_memory, cpus=cpus, pcp=False, early_unmovable=0,
                firmware_reserved=0, kernel_image=0, memmap_bytes_per_page=0,
                version="6.12", **kw)
    for z in mach.get("zones", []):
        name = z["zone"]
        if name not in ZONE_NAMES:
            raise SpbsimError(f"manifest zone {name!r} is not modelled")
        zi = ZONE_NAMES.index(name)
        s, e = int(m.mem.zone_start[zi]), int(m.mem.zone_end[zi])
        rs, re_ = int(z["start_pfn"]), int(z["start_pfn"]) + int(z["spanned"])
        overlap = min(e, re_) - max(s, rs)
        if overlap < int(z["present"]):
            raise SpbsimError(f"zone {name}: recorded span [{rs:#x}, {re_:#x}) with "
                              f"{z['present']} present pages does not fit the simulated "
                              f"zone [{s:#x}, {e:#x})")
    return m


# ---------------------------------------------------------------- pageblock types

#: page classes of :func:`page_classes`
PC_FREE, PC_MOVABLE, PC_SLAB, PC_PGTABLE, PC_RESERVED, PC_NOPAGE, PC_OTHER = range(7)


def page_classes(flags: np.ndarray) -> np.ndarray:
    """Classify every pfn from its KPF bits (a compound tail takes its head's
    class): free, movable (LRU/anon/mapped/swap), slab, page table, reserved,
    no page, other (kernel pages without telling bits, pcp pages)."""
    n = len(flags)
    tail = ((flags >> np.uint64(KPF_COMPOUND_TAIL)) & np.uint64(1)).astype(bool)
    head = np.maximum.accumulate(np.where(tail, 0, np.arange(n)))
    g = flags[head]

    def has(bits, v):
        mask = np.uint64(sum(1 << b for b in bits))
        return (v & mask) != 0

    cls = np.full(n, PC_OTHER, np.int8)
    cls[has((KPF_LRU, KPF_ANON, KPF_MMAP, KPF_SWAPBACKED, KPF_SWAPCACHE), g)] = PC_MOVABLE
    cls[has((KPF_SLAB,), g)] = PC_SLAB
    cls[has((KPF_PGTABLE,), g)] = PC_PGTABLE
    cls[has((KPF_RESERVED,), flags)] = PC_RESERVED
    cls[has((KPF_NOPAGE,), flags)] = PC_NOPAGE
    cls[has((KPF_BUDDY,), flags)] = PC_FREE
    return cls


def _affinity(counts: np.ndarray) -> np.ndarray:
    """[blocks, 7] page-class counts -> [blocks, MIGRATE_TYPES] affinity in [0, 1]."""
    used = counts[:, [PC_MOVABLE, PC_SLAB, PC_PGTABLE, PC_RESERVED, PC_OTHER]].sum(1)
    d = np.maximum(used, 1).astype(float)
    aff = np.zeros((len(counts), MIGRATE_TYPES))
    # reserved memory sits in MOVABLE blocks (memmap_init types every block MOVABLE)
    # pages without telling bits are ambiguous: kernel pages, but also pages
    # parked on pcp lists or not yet on an LRU list
    aff[:, MIGRATE_MOVABLE] = (counts[:, PC_MOVABLE] + counts[:, PC_RESERVED]
                               + 0.5 * counts[:, PC_OTHER]) / d
    aff[:, MIGRATE_RECLAIMABLE] = counts[:, PC_SLAB] / d
    aff[:, MIGRATE_UNMOVABLE] = (0.5 * counts[:, PC_OTHER] + counts[:, PC_PGTABLE]
                                 + 0.5 * counts[:, PC_SLAB]) / d
    aff[used == 0, MIGRATE_MOVABLE] = 1.0     # fully free blocks: boot default
    return aff


def initial_block_types(flags, free_pfn, free_order, zone_ranges, block_count, free_count,
                        nr_pageblocks, weight=2.0, known=None):
    """Choose a migratetype for every pageblock of the start state.

    ``zone_ranges``: [(zone index in the snapshot tables, start_pfn, end_pfn)];
    ``block_count`` [zone, mt] and ``free_count`` [zone, mt, order] from the
    snapshot's /proc/pagetypeinfo.  Per zone:

    1. Every pageblock gets a content affinity per type from kpageflags
       (:func:`page_classes`, shares of its non-free pages): MOVABLE =
       LRU/anon/mapped/swap and reserved pages (boot types every block
       MOVABLE); RECLAIMABLE = slab pages; UNMOVABLE = page tables and half the
       slab pages (kpageflags cannot tell reclaimable from unmovable slab);
       pages without telling bits count half MOVABLE, half UNMOVABLE (kernel
       pages, but also pages parked on pcp lists or not yet on an LRU list).
    2. Free buddies of order >= pageblock_order: pagetypeinfo says how many
       of each order sit on each type's list; the non-MOVABLE ones go to the
       buddies whose neighbouring pageblocks have the highest affinity for
       that type, the rest are MOVABLE.
    3. Pageblocks holding smaller free buddies: greedy (largest first), then
       single-block moves, minimising the L1 gap between the per-(type, order)
       free block counts and pagetypeinfo's plus ``weight`` x (the block's
       number of free buddies) x (1 - affinity): a block goes against its
       contents only to explain several free buddies (the two files are not
       read at the same instant).
    4. The other pageblocks fill what remains of each type's "Number of
       blocks type" quota, highest affinity first; so the start state matches
       pagetypeinfo's block counts exactly (when the quotas allow), at the
       price of typing some blocks against their contents when the quotas
       and contents disagree.

    On run1-mixed-s1, 613 of the 637 pageblocks whose type a later event
    revealed (before any event could have changed it) had been typed right.

    ``known``: int8 per pageblock, the type the trace revealed for it
    (spbsim.trace.start.first_types; negative: not revealed).  Those blocks
    take that type first (and a whole free buddy over them counts against
    pagetypeinfo's free blocks of that type); the steps above then type the
    others with what remains of the quotas.

    Returns uint8[nr_pageblocks] (blocks outside every zone: MOVABLE).
    """
    pb_mt = np.full(nr_pageblocks, MIGRATE_MOVABLE, np.uint8)
    cls = page_classes(flags)
    npb_flags = len(flags) // pageblock_nr_pages
    counts = np.zeros((nr_pageblocks, 7), np.int64)
    c = np.stack([(cls[:npb_flags * pageblock_nr_pages] == k)
                  .reshape(npb_flags, pageblock_nr_pages).sum(1) for k in range(7)], 1)
    counts[:min(npb_flags, nr_pageblocks)] = c[:nr_pageblocks]
    aff_all = _affinity(counts)
    free_pfn = np.asarray(free_pfn, np.int64)
    free_order = np.asarray(free_order, np.int64)
    types = [t for t in range(MIGRATE_TYPES)]
    for zi, zs, ze in zone_ranges:
        pb0, pb1 = zs >> pageblock_order, (ze + pageblock_nr_pages - 1) >> pageblock_order
        if pb1 <= pb0:
            continue
        nb = pb1 - pb0
        aff = aff_all[pb0:pb1]
        quota = np.asarray(block_count[zi], np.int64).copy()
        F = np.asarray(free_count[zi], np.int64).copy()
        assigned = np.full(nb, -1, np.int64)
        present = counts[pb0:pb1, PC_NOPAGE] < pageblock_nr_pages
        sel = (free_pfn >= zs) & (free_pfn < ze)
        fp, fo = free_pfn[sel], free_order[sel]
        if known is not None:
            kn = np.asarray(known[pb0:pb1], np.int64)
            kb = np.flatnonzero((kn >= 0) & (kn < MIGRATE_TYPES) & present)
            assigned[kb] = kn[kb]

        # 2. whole free pageblocks
        for o in range(NR_PAGE_ORDERS - 1, pageblock_order - 1, -1):
            heads = fp[fo == o]
            if not len(heads):
                continue
            nper = 1 << (o - pageblock_order)
            # affinity of a buddy: its neighbouring pageblocks' contents
            score = np.zeros((len(heads), MIGRATE_TYPES))
            left = np.ones(len(heads), bool)
            for i, h in enumerate(heads.tolist()):
                b = (h >> pageblock_order) - pb0
                shown = assigned[max(b, 0):min(b + nper, nb)]
                shown = shown[shown >= 0]
                if len(shown):         # revealed: the buddy's blocks share its type
                    assigned[b:b + nper] = shown[0]
                    F[shown[0], o] -= 1
                    left[i] = False
                    continue
                nbrs = [x for x in (b - 1, b + nper) if 0 <= x < nb]
                if nbrs:
                    score[i] = aff[nbrs].mean(0)
            for t in types:
                if t == MIGRATE_MOVABLE or F[t, o] <= 0:
                    continue
                cand = np.flatnonzero(left)
                pick = cand[np.argsort(-score[cand, t], kind="stable")][:int(F[t, o])]
                for i in pick.tolist():
                    b = (int(heads[i]) >> pageblock_order) - pb0
                    assigned[b:b + nper] = t
                    left[i] = False
            for i in np.flatnonzero(left).tolist():
                b = (int(heads[i]) >> pageblock_order) - pb0
                assigned[b:b + nper] = MIGRATE_MOVABLE

        # 3. pageblocks with smaller free buddies
        small = fo < pageblock_order
        V = np.zeros((nb, pageblock_order), np.int64)
        np.add.at(V, ((fp[small] >> pageblock_order) - pb0, fo[small]), 1)
        part = np.flatnonzero((V.sum(1) > 0) & (assigned < 0))
        if len(part):
            target = F[:, :pageblock_order].astype(np.int64)
            S = np.zeros_like(target)
            for b in np.flatnonzero((V.sum(1) > 0) & (assigned >= 0)).tolist():
                S[assigned[b]] += V[b]          # revealed blocks' free buddies
            nbud = V.sum(1)
            order_ = part[np.argsort(-(V[part] << np.arange(pageblock_order)).sum(1),
                                     kind="stable")]
            choice = {}
            for b in order_.tolist():
                best, bt = None, MIGRATE_MOVABLE
                for t in types:
                    if quota[t] <= 0 and t != MIGRATE_MOVABLE:
                        continue
                    gain = (np.abs(S[t] + V[b] - target[t]) - np.abs(S[t] - target[t])).sum()
                    cost = gain + weight * nbud[b] * (1 - aff[b, t])
                    if best is None or cost < best:
                        best, bt = cost, t
                choice[b] = bt
                S[bt] += V[b]
            for _ in range(4):                      # single-block moves
                moved = False
                for b in order_.tolist():
                    t0 = choice[b]
                    base = (np.abs(S[t0] - target[t0]).sum()
                            - np.abs(S[t0] - V[b] - target[t0]).sum()
                            + weight * nbud[b] * (1 - aff[b, t0]))
                    for t in types:
                        if t == t0 or (quota[t] <= 0 and t != MIGRATE_MOVABLE):
                            continue
                        new = (np.abs(S[t] + V[b] - target[t]).sum()
                               - np.abs(S[t] - target[t]).sum()
                               + weight * nbud[b] * (1 - aff[b, t]))
                        if new < base - 1e-9:
                            S[t0] -= V[b]
                            S[t] += V[b]
                            choice[b] = t0 = t
                            base = new
                            moved = True
                if not moved:
                    break
            for b, t in choice.items():
                assigned[b] = t

        # 4. the rest: fill the remaining quotas by affinity
        for t in types:
            quota[t] -= int(((assigned == t) & present).sum())
        rest = np.flatnonzero((assigned < 0) & present)
        if len(rest):
            pairs = [(-aff[b, t], t, b) for b in rest.tolist() for t in types]
            pairs.sort()
            q = np.maximum(quota, 0)
            for _, t, b in pairs:
                if assigned[b] < 0 and q[t] > 0:
                    assigned[b] = t
                    q[t] -= 1
            for b in rest.tolist():
                if assigned[b] < 0:
                    assigned[b] = int(np.argmax(aff[b]))
        assigned[assigned < 0] = MIGRATE_MOVABLE
        pb_mt[pb0:pb1] = assigned.astype(np.uint8)
    return pb_mt


# ---------------------------------------------------------------- the replay state

def _has_bit(mt):
    return {MIGRATE_UNMOVABLE: PB_has_unmovable, MIGRATE_RECLAIMABLE: PB_has_reclaimable,
            MIGRATE_MOVABLE: PB_has_movable}.get(int(mt), PB_has_unmovable)


class PlacementReplay:
    """A machine plus the replay counters; apply op tables to it.

    ``reset_allocated(pb_mt)`` makes every pageblock one allocated block
    (empty free lists); ``insert_free(pfn, order)`` frees blocks into it;
    ``apply(ops, mode)`` runs compiled code (spbsim.trace.placement).
    ``times``: the trace times (s) of the batch whose op table ``apply`` is
    given, row for row (set by :func:`replay_placement`), for subclasses
    that act at trace times.
    """

    def __init__(self, machine):
        self.machine = machine
        self.times = np.zeros(0)
        m = machine.mem
        (self.res, self.stats, self.revealed, self.last_zl,
         self.scratch, self.log) = pl.new_counters(m.pb_mt.size)
        #: the trace prints extfrag before the fallback's zone_locked line (v6.1)
        self.extfrag_first = False

    @property
    def mem(self):
        return self.machine.mem

    def reset_allocated(self, pb_mt=None):
        """Every page allocated: each present pageblock is one order-9 block
        (PG_head, type bits of its block), the free lists are empty."""
        m = self.mem
        if pb_mt is not None:
            present = m.pb_zone >= 0
            m.pb_mt[present] = np.asarray(pb_mt, np.uint8)[present]
        m.pg_next[:] = -1
        m.pg_prev[:] = -1
        m.pg_order[:] = -1
        m.pg_flags[:] = 0
        m.pg_owner[:] = 0
        m.fa_head[:] = -1
        m.fa_tail[:] = -1
        m.fa_nr[:] = 0
        m.fl_nr[:] = 0
        m.nr_free[:] = 0
        m.zstat[:, ZS_NR_FREE] = 0
        m.zstat[:, ZS_NR_FREE_BLOCKS] = 0
        m.zstat[:, ZS_FREE_HIGHATOMIC] = 0
        m.pcp_head[:] = -1
        m.pcp_tail[:] = -1
        m.pcp[:, :, PCP_COUNT] = 0
        # state other parts of the model keep beside the buddy lists, if present
        for name, value in (("pg_obj", -1), ("lru_head", -1), ("lru_tail", -1),
                            ("lru_pages", 0), ("owner_pages", 0), ("obj_pfn", -1), ("obj_pc", -1),
                            ("pc_pfn", -1),
                            ("cc_n", 0), ("capc", -1),
                            ("pb_cpu", 0), ("pb_taint", 0), ("tl_n", 0),
                            ("pb_own_next", -1), ("pb_own_prev", -1),
                            ("pcp_own_head", -1), ("pcp_own_tail", -1), ("pcp_pairs", 0)):
            if hasattr(m, name):
                getattr(m, name)[...] = value
        if hasattr(m, "pc_next"):           # the split-piece pool: all free again
            from ..mm.state import reset_piece_pool
            reset_piece_pool(m)
        pbs = np.flatnonzero(m.pb_zone >= 0)
        heads = pbs << pageblock_order
        mts = m.pb_mt[pbs].astype(np.int64)
        f = PG_head | ((mts & 3) << PG_MT_SHIFT)
        m.pg_flags[heads] = f.astype(np.uint8)
        m.pg_order[heads] = pageblock_order
        m.pb_flags[:] = 0
        m.pb_flags[pbs] = np.array([_has_bit(t) for t in range(MIGRATE_TYPES)],
                                   np.uint8)[mts]
        self.revealed[:] = 0
        self.last_zl[:] = -1

    def started(self, flags):
        """Called once the start state is built, with the start snapshot's
        kpageflags (one u64 per pfn); a hook for subclasses."""

    def insert_free(self, pfn, order):
        """Free the given blocks (list tails) into the state."""
        pfn = np.asarray(pfn, np.int64)
        ops = np.zeros((len(pfn), pl.NCOL), np.int64)
        ops[:, pl.C_KIND] = pl.K_INIT_FREE
        ops[:, pl.C_PFN] = pfn
        ops[:, pl.C_ORDER] = np.asarray(order, np.int64)
        self.apply(ops)

    def apply(self, ops, mode=pl.MODE_STRICT, lo=0, hi=None):
        ops = np.ascontiguousarray(ops, np.int64)
        hi = len(ops) if hi is None else hi
        if hi > lo:
            pl.apply_ops(self.mem, ops, int(lo), int(hi), int(mode), self.res, self.stats,
                         self.revealed, self.last_zl, self.scratch, self.log,
                         self.extfrag_first)

    def buddyinfo(self):
        """nr_free of the populated zones: (zone names, int64[zone, order])."""
        zs = self.machine.populated_zones()
        return [ZONE_NAMES[z] for z in zs], self.mem.nr_free[zs].copy()

    def free_mask(self):
        """Boolean per pfn: inside a free buddy."""
        m = self.mem
        heads = np.flatnonzero(m.pg_flags & 1)
        out = np.zeros(m.pg_flags.size, bool)
        sizes = 1 << m.pg_order[heads].astype(np.int64)
        d = np.zeros(m.pg_flags.size + 1, np.int64)
        np.add.at(d, heads, 1)
        np.add.at(d, heads + sizes, -1)
        out[:] = np.cumsum(d[:-1]) > 0
        return out

    def residues(self) -> dict:
        """{slot: {outcome: [count per order]}} (non-zero rows only)."""
        out = {}
        for s, sname in enumerate(pl.SLOTS):
            row = {}
            for o, oname in enumerate(pl.OUTCOMES):
                v = self.res[s, o]
                if v.any():
                    row[oname] = v.tolist()
            if row:
                out[sname] = row
        return out

    def residue_log(self) -> list[tuple]:
        """Logged residues: (line, slot name, outcome name, pfn, order)."""
        n = min(int(self.stats[pl.ST["log_records"]]), len(self.log))
        return [(int(a), pl.SLOTS[b], pl.OUTCOMES[c], int(d), int(e))
                for a, b, c, d, e in self.log[:n].tolist()]

    def counters(self) -> dict:
        return {n: int(self.stats[i]) for i, n in enumerate(pl.STATS)}


def buddyinfo_distance(sim_names, sim, real_names, real) -> dict:
    """Per zone: signed block differences by order, |.| in blocks and pages."""
    out = {}
    for i, name in enumerate(real_names):
        r = np.asarray(real[i], np.int64)
        s = np.asarray(sim[sim_names.index(name)], np.int64) if name in sim_names \
            else np.zeros_like(r)
        n = min(len(r), len(s))
        d = s[:n] - r[:n]
        out[name] = {"diff": d.tolist(),
                     "blocks": int(np.abs(d).sum()),
                     "pages": int((np.abs(d) << np.arange(n)).sum()),
                     "free_sim": int((s[:n] << np.arange(n)).sum()),
                     "free_real": int((r[:n] << np.arange(n)).sum())}
    return out


# ---------------------------------------------------------------- trace -> ops

def extfrag_first(manifest) -> bool:
    """True if the recorded kernel prints ``mm_page_alloc_extfrag`` before the
    zone_locked line of the page its fallback gave.  ``__rmqueue_fallback``
    (before v6.15) traces the fallback, then ``__rmqueue`` retries
    ``__rmqueue_smallest``; ``__rmqueue_claim`` (v6.15, and the 6.12 LTS
    backport Debian's 6.12.117 carries, which spbsim's 6.12 variant models)
    traces a claim after that line and a steal without one.  From the
    manifest's kernel release; False when it has none."""
    from spbsim.trace.manifest import kernel_release, release_version
    ver = release_version(kernel_release(manifest or {}))
    return ver is not None and (ver < (6, 12) or (6, 13) <= ver < (6, 15))


def make_ops(events) -> np.ndarray:
    """An op table from dicts: ``kind`` (an OP name such as
    'mm_page_alloc_zone_locked', or its code), ``pfn``, ``order`` and
    optionally ``migratetype``, ``cpu``, ``fallback_order``,
    ``fallback_migratetype``, ``change_ownership``, ``end``, ``nr_scanned``,
    ``nr_taken`` (isolate_freepages), ``line``, ``gfp`` (mm_page_alloc)."""
    cols = {"pfn": pl.C_PFN, "order": pl.C_ORDER, "migratetype": pl.C_MT, "cpu": pl.C_CPU,
            "fallback_order": pl.C_FB_ORDER, "fallback_migratetype": pl.C_FB_MT,
            "change_ownership": pl.C_CHOWN, "end": pl.C_END, "nr_taken": pl.C_COUNT,
            "nr_scanned": pl.C_FB_ORDER, "line": pl.C_LINE, "gfp": pl.C_GFP}
    ops = np.zeros((len(events), pl.NCOL), np.int64)
    ops[:, [pl.C_MT, pl.C_FB_ORDER, pl.C_FB_MT, pl.C_CHOWN]] = -1
    for i, e in enumerate(events):
        k = e["kind"]
        ops[i, pl.C_KIND] = pl.OP[k] if isinstance(k, str) else int(k)
        for name, v in e.items():
            if name != "kind":
                ops[i, cols[name]] = int(v)
    return ops




_RANGE_RE = re.compile(r"\(?\s*(0x[0-9a-fA-F]+|\d+)\s*~\s*(0x[0-9a-fA-F]+|\d+)\s*\)?")


def _ops_from_events(ev, records=()) -> np.ndarray:
    """Op table (spbsim.trace.placement) of a batch; other events become
    ops where they matter (mm_compaction_isolate_freepages)."""
    ops = np.zeros((len(ev), pl.NCOL), np.int64)
    ops[:, pl.C_KIND] = ev["kind"]
    ops[:, pl.C_PFN] = ev["pfn"]
    ops[:, pl.C_ORDER] = ev["order"]
    ops[:, pl.C_MT] = ev["migratetype"]
    ops[:, pl.C_CPU] = ev["cpu"]
    ops[:, pl.C_FB_ORDER] = ev["fallback_order"]
    ops[:, pl.C_FB_MT] = ev["fallback_migratetype"]
    ops[:, pl.C_CHOWN] = ev["change_ownership"]
    ops[:, pl.C_LINE] = ev["line"]
    ops[:, pl.C_GFP] = ev["gfp"].astype(np.int64)
    if len(records):
        for i in np.flatnonzero((ev["kind"] == OTHER_EVENT) & (ev["aux"] >= 0)).tolist():
            rec = records[int(ev["aux"][i])]
            if getattr(rec, "event", "") != "mm_compaction_isolate_freepages":
                continue
            mr = _RANGE_RE.match(str(rec.args.get("range", "")))
            taken = rec.args.get("nr_taken")
            scanned = rec.args.get("nr_scanned")
            if not mr or not isinstance(taken, int):
                continue
            ops[i, pl.C_FB_ORDER] = scanned if isinstance(scanned, int) else -1
            ops[i, pl.C_KIND] = pl.K_ISOLATE
            ops[i, pl.C_PFN] = int(mr.group(1), 0)
            ops[i, pl.C_END] = int(mr.group(2), 0)
            ops[i, pl.C_COUNT] = taken
    return ops


def _start_state(rep, snap, zone_ranges, types="snapshot", flags=None, known=None):
    """Load the start snapshot into the replay state; returns (free pfn, order,
    flags).  ``flags``: its kpageflags if already loaded; ``known``: as
    :func:`initial_block_types`."""
    if flags is None:
        flags = load_kpageflags(snap["dir"] / "kpageflags.bin.xz"
                                if (snap["dir"] / "kpageflags.bin.xz").exists()
                                else snap["dir"] / "kpageflags.bin")
    m = rep.mem
    if len(flags) < m.pg_flags.size:
        flags = np.concatenate([flags, np.zeros(m.pg_flags.size - len(flags), np.uint64)])
    flags = flags[:m.pg_flags.size]
    cuts = sorted({int(s) for _, s, _ in zone_ranges} | {int(e) for _, _, e in zone_ranges})
    fpfn, ford = free_blocks_from_kpageflags(flags, max_order=NR_PAGE_ORDERS - 1,
                                             boundaries=cuts)
    # every free page must lie in a simulated zone
    zone_of = m.pb_zone[fpfn >> pageblock_order]
    if (zone_of < 0).any():
        bad = int(fpfn[zone_of < 0][0])
        raise SpbsimError(f"start kpageflags: free page {bad:#x} outside every simulated zone")
    pt = procfs.read_snapshot(snap["dir"]).get("pagetypeinfo")
    if types == "snapshot" and pt is not None:
        names = pt["zone_names"]
        zr = [(names.index(ZONE_NAMES[z]), s, e) for z, s, e in zone_ranges
              if ZONE_NAMES[z] in names]
        pb_mt = initial_block_types(flags, fpfn, ford, zr, pt["block_count"],
                                    pt["free_count"], m.pb_mt.size, known=known)
    else:
        pb_mt = np.full(m.pb_mt.size, MIGRATE_MOVABLE, np.uint8)
    rep.reset_allocated(pb_mt)
    rep.insert_free(fpfn, ford)
    return fpfn, ford, flags


def replay_placement(trace_path, snapshots_dir, lenient=False, progress=False, *,
                     manifest=None, max_lines=None, start_tag="start", types="snapshot",
                     compare_tags=("periodic-", "end"), check=False, batch_size=1 << 16,
                     keep_replay=False, replay_factory=None) -> dict:
    """Replay the buddy-level events of a trace; compare with every snapshot.

    ``snapshots_dir`` holds index.tsv and the snapshot directories; the
    machine geometry comes from ``manifest`` (dict or path; default
    snapshots_dir/../manifest.json).  ``lenient`` skips malformed trace lines
    (TraceReader).  ``max_lines`` stops early.  ``types``: 'snapshot'
    (:func:`initial_block_types`) or 'movable' (every block MOVABLE).
    Snapshots whose tag starts with one of ``compare_tags`` are compared.
    ``check`` runs the whole DEBUG_VM checker (Machine.check) at every
    comparison point (entry ``check``: None or the violation).

    Returns a dict: ``snapshots`` (one entry per compared snapshot, in seq
    order: seq, tag; t and line of the best-matching instant of its window;
    zones -> {diff (sim - real blocks per order), blocks, pages, free_sim,
    free_real} there; pages (sum over zones); blocks_by_order (|diff| summed
    over zones); pages_first_file, zones_first_file (pages per zone),
    t_first_file, line_first_file; window_end; block_types -> {zone: sim -
    real pageblocks per type, pagetypeinfo}), ``residues`` ({slot: {outcome:
    [count per order]}}, see spbsim.trace.placement.OUTCOMES),
    ``residue_log`` ([(line, slot, outcome, pfn, order)], first 65536),
    ``counters``, ``start`` (what the start state was built from),
    ``final_block_types``, ``trace`` (path, lines, event counts, lenient
    errors), ``seconds``; with ``keep_replay`` also ``replay`` (the
    PlacementReplay object, for further inspection).  ``replay_factory``:
    builds that object from the machine (default PlacementReplay).
    """
    t0 = time.monotonic()
    snapshots_dir = Path(snapshots_dir)
    if manifest is None or not isinstance(manifest, dict):
        from spbsim.trace.manifest import read_manifest
        manifest = read_manifest(snapshots_dir.parent / "manifest.json" if manifest is None
                                 else manifest)
    index = read_index(snapshots_dir)
    starts = [s for s in index if s["tag"] == start_tag]
    if not starts:
        raise SpbsimError(f"{snapshots_dir}: no snapshot tagged {start_tag!r}")
    start = starts[0]
    machine = oracle_machine(manifest)
    rep = (replay_factory or PlacementReplay)(machine)
    rep.extfrag_first = extfrag_first(manifest)
    m = machine.mem
    zone_ranges = [(z, int(m.zone_start[z]), int(m.zone_end[z]))
                   for z in machine.populated_zones()]
    fpfn, ford, flags = _start_state(rep, start, zone_ranges, types)
    rep.started(flags)
    start_info = {"seq": start["seq"], "tag": start["tag"], "free_blocks": int(len(fpfn)),
                  "free_pages": int((1 << ford.astype(np.int64)).sum()),
                  "block_types": _block_types(machine)}
    if check:
        _check(machine)

    targets = [s for s in index if s["seq"] > start["seq"]
               and any(s["tag"].startswith(t) for t in compare_tags)]
    results = []
    buddy_kinds = np.array([pl.K_FREE, pl.K_ZL, pl.K_DRAIN, pl.K_EXTFRAG, pl.K_ISOLATE])

    class Window:
        """A target snapshot whose begin marker was seen: track the distance
        at the first-file time and its minimum over the window."""

        def __init__(self, snap, t, line):
            files = procfs.read_snapshot(snap["dir"])
            self.snap, self.files = snap, files
            self.real_names, self.real = files["buddyinfo"]
            self.at_t = None
            self.best = None
            self.measure(t, line)          # the state at the begin marker

        def measure(self, t, line):
            names, sim = rep.buddyinfo()
            zones = buddyinfo_distance(names, sim, self.real_names, self.real)
            pages = sum(z["pages"] for z in zones.values())
            if self.best is None or pages < self.best[0]:
                self.best = (pages, t, line, zones)
            return pages, t, line, zones

        def first_file(self, t, line):
            if self.at_t is None:
                self.at_t = self.measure(t, line)

        def close(self, t, line):
            self.first_file(t, line)
            pages, bt, bline, zones = self.best
            by_order = np.zeros(NR_PAGE_ORDERS, np.int64)
            for z in zones.values():
                by_order[:len(z["diff"])] += np.abs(z["diff"])
            snap = self.snap
            entry = {"seq": snap["seq"], "tag": snap["tag"], "t": bt, "line": bline,
                     "zones": zones, "pages": pages, "blocks_by_order": by_order.tolist(),
                     "t_first_file": self.at_t[1], "line_first_file": self.at_t[2],
                     "pages_first_file": self.at_t[0],
                     "zones_first_file": {z: v["pages"] for z, v in self.at_t[3].items()},
                     "window_end": (t, line)}
            pt = self.files.get("pagetypeinfo")
            if pt is not None:
                simbc = _block_types(machine)
                entry["block_types"] = {
                    n: (np.asarray(simbc[n]) - pt["block_count"][i][:MIGRATE_TYPES]).tolist()
                    for i, n in enumerate(pt["zone_names"]) if n in simbc}
            if check:
                entry["check"] = _check(machine, raise_=False)
            results.append(entry)

    # phase: 0 before the start window, 1 inside it, 2 after it
    phase = 0
    pending = [s for s in targets]       # in seq order
    win = None                           # Window of the snapshot being read
    reader = TraceReader(trace_path, lenient=lenient, progress=progress, keep_other=True,
                         batch_size=batch_size, max_lines=max_lines)
    last_line = 0
    for batch in reader.batches():
        ev = batch.events
        n = len(ev)
        if not n:
            continue
        ops = _ops_from_events(ev, batch.records)
        ts = ev["ts"]
        rep.times = ts
        lines = ev["line"]
        marks = np.flatnonzero(ev["kind"] == TRACING_MARK_WRITE)
        i = 0
        while i < n:
            k = np.searchsorted(marks, i)
            stop = int(marks[k]) if k < len(marks) else n
            if phase > 0 and stop > i:
                mode = pl.MODE_CONSISTENT if phase == 1 else pl.MODE_STRICT
                if win is None:
                    rep.apply(ops, mode, i, stop)
                else:           # inside a snapshot window: event by event
                    tf = win.snap["t_first"]
                    prev = i
                    for j in (i + np.flatnonzero(np.isin(ops[i:stop, pl.C_KIND], buddy_kinds))
                              ).tolist():
                        if tf is not None and ts[j] > tf:
                            win.first_file(float(ts[j]), int(lines[j]))
                        rep.apply(ops, mode, prev, j + 1)
                        prev = j + 1
                        win.measure(float(ts[j]), int(lines[j]))
                    rep.apply(ops, mode, prev, stop)
            if stop >= n:
                break
            i = stop + 1
            rec = batch.records[int(ev["aux"][stop])]
            if not isinstance(rec, TracingMarkWrite):
                continue
            mk = _MARK_RE.match(rec.text.strip())
            if not mk:
                continue
            what, seq = mk.group(1), int(mk.group(2))
            if seq == start["seq"]:
                if what == "begin" and phase == 0:
                    phase = 1
                elif what == "end" and phase == 1:
                    phase = 2
                continue
            if phase == 0:
                continue
            if what == "begin":
                while pending and pending[0]["seq"] < seq:      # its markers are missing
                    pending.pop(0)
                if pending and pending[0]["seq"] == seq:
                    if win is not None:
                        win.close(rec.ts, rec.line)
                    win = Window(pending.pop(0), rec.ts, rec.line)
                    tf = win.snap["t_first"]
                    if tf is not None and tf <= rec.ts:
                        win.first_file(rec.ts, rec.line)
            elif what == "end" and win is not None and seq == win.snap["seq"]:
                win.close(rec.ts, rec.line)
                win = None
        last_line = int(lines[-1])
    if win is not None:
        win.close(float("nan"), last_line)
    if phase == 0:
        raise SpbsimError(f"{trace_path}: no 'oracle_snap_begin seq={start['seq']}' marker; "
                          f"the start snapshot cannot be placed in the trace")
    out = {
        "snapshots": results,
        "residues": rep.residues(),
        "residue_log": rep.residue_log(),
        "counters": rep.counters(),
        "start": start_info,
        "final_block_types": _block_types(machine),
        "trace": {"path": str(trace_path), "lines": reader.lines or last_line,
                  "events": dict(reader.event_counts), "errors": dict(reader.errors)},
        "seconds": round(time.monotonic() - t0, 2),
    }
    if keep_replay:
        out["replay"] = rep
    return out


def _block_types(machine) -> dict:
    bc = machine.block_counts()
    return {name: bc[i].tolist() for i, name in enumerate(machine.zone_names())}


#: DEBUG_VM checks that need page contents the replay does not know
CONTENT_CHECKS = (15, 16, 17, 18)


def _check(machine, raise_=True):
    """DEBUG_VM check; returns None if clean, else the message."""
    from spbsim.machine import InvariantError
    try:
        machine.check()
        return None
    except InvariantError as e:
        if raise_:
            raise
        return str(e)


# ---------------------------------------------------------------- output

def format_table(result: dict) -> str:
    """The per-snapshot distance table (and residues) as text.

    Page columns: sum over orders of |sim - real| x 2^order, per zone, at the
    best-matching instant of the snapshot's begin/end window; ``@first`` is
    the total at the snapshot's first-file time; then |sim - real| in blocks
    per order (all zones).
    """
    snaps = result["snapshots"]
    if not snaps:
        return "(no snapshot compared)\n"
    zones = list(snaps[0]["zones"])
    head = f"{'seq':>4} {'tag':<14} {'t':>7} " + " ".join(f"{z:>7}" for z in zones)
    head += f" {'total':>7} {'@first':>7}  blocks |sim-real| by order 0..10"
    lines = [head]
    for s in snaps:
        row = f"{s['seq']:>4} {s['tag']:<14} {s['t']:>7.2f} "
        row += " ".join(f"{s['zones'][z]['pages']:>7}" for z in zones)
        row += f" {s['pages']:>7} {s['pages_first_file']:>7}  "
        row += " ".join(f"{x:>3}" for x in s["blocks_by_order"])
        lines.append(row)
    lines.append("")
    last = snaps[-1]
    lines.append(f"free pages sim/real at {last['tag']}: " + ", ".join(
        f"{z} {last['zones'][z]['free_sim']}/{last['zones'][z]['free_real']}" for z in zones))
    lines.append("residues (count, then per order 0..10):")
    for slot, row in result["residues"].items():
        for outcome, v in row.items():
            lines.append(f"  {slot:<18} {outcome:<8} {sum(v):>8}  {v}")
    c = result["counters"]
    lines.append("counters: " + ", ".join(f"{k}={v}" for k, v in c.items() if v))
    lines.append(f"{result['trace']['lines']} lines in {result['seconds']} s")
    return "\n".join(lines) + "\n"


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m spbsim.trace.replay",
                                description="Placement replay of an oracle run: buddyinfo "
                                            "distance at every snapshot.")
    p.add_argument("run_dir", help="oracle run directory (trace.txt.xz, snapshots/, manifest.json)")
    p.add_argument("--lenient", action="store_true", help="skip malformed trace lines")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--max-lines", type=int, default=None)
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    a = p.parse_args(argv)
    run = Path(a.run_dir)
    trace = next((run / n for n in ("trace.txt.xz", "trace.txt.zst", "trace.txt.gz", "trace.txt")
                  if (run / n).exists()), None)
    if trace is None:
        print(f"{run}: no trace.txt[.xz|.zst|.gz]", file=sys.stderr)
        return 2
    try:
        r = replay_placement(trace, run / "snapshots", lenient=a.lenient, progress=a.progress,
                             max_lines=a.max_lines)
    except SpbsimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(format_table(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
