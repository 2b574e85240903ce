"""Decision-level agreement: where the real kernel took each buddy-level
allocation against where the simulated allocator would have, from the same state.

The placement replay (spbsim.trace.replay) drives the state from the real
trace; before each buddy-level allocation the simulated choice is peeked
(spbsim.trace.peek) and compared: same pageblock, same free list, same buddy
order.  ``replay_agreement(trace, snapshots_dir)``, ``format_table(result)``;
``spbsim replay RECORDING --mode agreement``.  Rules: docs/fidelity.md.
"""
from __future__ import annotations

import time

import numpy as np

from spbsim.mm.const import MIGRATETYPE_NAMES, ZONE_NAMES, pageblock_order
from spbsim.mm.gfp import (GFP_HIGHUSER_MOVABLE, GFP_KERNEL, __GFP_COMP, __GFP_DIRECT_RECLAIM,
                           __GFP_MOVABLE, __GFP_RECLAIMABLE, format_gfp)
from spbsim.trace import agreement_core as core
from spbsim.trace import placement as pl
from spbsim.trace.kpageflags import KPF_LRU
from spbsim.trace.peek import KIND_NAMES, RULES, rule_for_version
from spbsim.trace.replay import PlacementReplay, replay_placement

__all__ = ["replay_agreement", "AgreementReplay", "summarize", "gfp_class", "format_table",
           "BREAKDOWN_KEYS", "MEASURES"]

#: the breakdown keys of the result's ``classes``
BREAKDOWN_KEYS = ("order", "migratetype", "gfp", "pcp", "zone", "decision", "alloc_flags")
#: agreement measures: same pageblock, same free list (migratetype), same buddy
#: order, same kind of decision, and the first three together
MEASURES = ("block", "list", "order", "kind", "all")
#: gfp classes, in the order they are tested
GFP_CLASSES = ("unknown", "THP", "reclaimable", "atomic/nowait", "GFP_HIGHUSER_MOVABLE",
               "movable other", "GFP_KERNEL", "other")


def gfp_class(gfp: int, order: int) -> str:
    """The class of a request: THP (order >= 9, __GFP_COMP, movable),
    reclaimable, atomic/nowait (other requests without __GFP_DIRECT_RECLAIM),
    GFP_HIGHUSER_MOVABLE, other movable, GFP_KERNEL (unmovable, may enter
    reclaim and fs), other; gfp < 0: unknown (no mm_page_alloc ended the
    event's group)."""
    if gfp < 0:
        return "unknown"
    if order >= pageblock_order and gfp & __GFP_COMP and gfp & __GFP_MOVABLE:
        return "THP"
    if gfp & __GFP_RECLAIMABLE:
        return "reclaimable"
    if not gfp & __GFP_DIRECT_RECLAIM:
        return "atomic/nowait"
    if gfp & __GFP_MOVABLE:
        return "GFP_HIGHUSER_MOVABLE" if gfp & GFP_HIGHUSER_MOVABLE == GFP_HIGHUSER_MOVABLE \
            else "movable other"
    if gfp & GFP_KERNEL == GFP_KERNEL:
        return "GFP_KERNEL"
    return "other"


class AgreementReplay(PlacementReplay):
    """A PlacementReplay whose ``apply`` also records, per buddy-level
    allocation, the real and the peeked decision (spbsim.trace.agreement_core)."""

    def __init__(self, machine, rule, lru=True, heal=True):
        super().__init__(machine)
        self.heal = bool(heal)
        m = machine.mem
        if int(m.pb_list.max()) >= 3:
            raise ValueError("agreement: per-SPB free lists are not supported")
        self.rule = int(rule)
        self.use_lru = lru
        (self.pend, self.npend, self.gkey, self.lru, self.ascratch,
         self.astats) = core.new_state(int(machine.mem.pcp.shape[1]), m.pg_flags.size)
        if not lru:
            self.lru = np.zeros(0, np.uint8)
        self.rows = np.zeros((0, core.NROW), np.int64)
        self.chunks = []
        self.totals = np.zeros(len(core.STATS), np.int64)

    def started(self, flags):
        """Pages on an LRU list at the start (KPF_LRU, set on every page of a
        folio) count as movable in claim decisions."""
        if self.use_lru:
            n = min(len(flags), self.lru.size)
            self.lru[:n] = ((flags[:n] >> np.uint64(KPF_LRU)) & np.uint64(1)).astype(np.uint8)

    def _room(self, need):
        if self.rows.shape[0] < need:
            self.rows = np.zeros((need, core.NROW), np.int64)

    def _collect(self):
        n = int(self.astats[0])
        if n:
            self.chunks.append(self.rows[:n].astype(np.int32))
        self.totals += self.astats
        self.astats[:] = 0

    def apply(self, ops, mode=pl.MODE_STRICT, lo=0, hi=None):
        ops = np.ascontiguousarray(ops, np.int64)
        hi = len(ops) if hi is None else hi
        if hi <= lo:
            return
        if ops.shape[1] <= pl.C_GFP:
            raise ValueError("agreement: the op table has no gfp column")
        self._room(hi - lo + self.pend.shape[0] * self.pend.shape[1] + 16)
        core.agreement_ops(self.mem, ops, int(lo), int(hi), int(mode), self.res, self.stats,
                           self.revealed, self.last_zl, self.scratch, self.log, self.rule,
                           self.heal, self.pend, self.npend, self.gkey, self.lru, self.ascratch,
                           self.rows, self.astats, self.extfrag_first)
        self._collect()

    def finish(self) -> np.ndarray:
        """Flush the entries still waiting for their mm_page_alloc (unmatched)
        and return every row (int32, columns agreement_core.ROW_COLUMNS)."""
        self._room(self.pend.shape[0] * self.pend.shape[1] + 16)
        for c in range(self.npend.shape[0]):
            self.astats[core.STATS.index("flushed_unmatched")] += self.npend[c]
            core.flush_pending(self.pend, self.npend, self.gkey, c, -1, 0, self.rows,
                               self.astats)
        self._collect()
        rows = np.concatenate(self.chunks) if self.chunks else \
            np.zeros((0, core.NROW), np.int32)
        self.chunks = [rows]
        return rows


def _measures(rows):
    """Boolean per row for each of MEASURES."""
    c = {n: rows[:, i] for i, n in enumerate(core.ROW_COLUMNS)}
    peek_pb = np.where(c["peek_pfn"] >= 0, c["peek_pfn"] >> pageblock_order, -2)
    block = peek_pb == (c["real_pfn"] >> pageblock_order)
    lst = c["peek_list"] == c["real_list"]
    order = c["peek_order"] == c["real_order"]
    kind = c["peek_kind"] == c["real_kind"]
    return {"block": block, "list": lst, "order": order, "kind": kind,
            "all": block & lst & order}


def _labels(rows):
    """Class label per row for each of BREAKDOWN_KEYS (arrays of str)."""
    c = {n: rows[:, i] for i, n in enumerate(core.ROW_COLUMNS)}
    names = np.array(list(MIGRATETYPE_NAMES) + ["?"])
    mt = c["migratetype"]
    gfp_keys = {}
    gfp_lab = np.empty(len(rows), object)
    for i, (g, o) in enumerate(zip(c["gfp"].tolist(), c["order"].tolist())):
        k = (g, o >= pageblock_order)
        lab = gfp_keys.get(k)
        if lab is None:
            lab = gfp_keys[k] = gfp_class(g, o)
        gfp_lab[i] = lab
    group = c["group"]
    pcp = np.where(group >= 2, "refill", np.where(group == 1, "single", "unmatched"))
    zones = np.array(list(ZONE_NAMES) + ["?"])
    z = np.where((c["zone"] >= 0) & (c["zone"] < len(ZONE_NAMES)), c["zone"], len(ZONE_NAMES))
    kinds = np.array(KIND_NAMES + ("?",))
    rk = np.where((c["real_kind"] >= 0) & (c["real_kind"] < len(KIND_NAMES)), c["real_kind"],
                  len(KIND_NAMES))
    paths = np.array(core.PATHS + ("-",))
    p = np.where((c["path"] >= 0) & (c["path"] < len(core.PATHS)), c["path"], len(core.PATHS))
    return {"order": c["order"].astype(str),
            "migratetype": names[np.where((mt >= 0) & (mt < len(MIGRATETYPE_NAMES)), mt,
                                          len(MIGRATETYPE_NAMES))],
            "gfp": gfp_lab.astype(str), "pcp": pcp, "zone": zones[z],
            "decision": kinds[rk], "alloc_flags": paths[p]}


def _counts(meas, sel):
    out = {"events": int(sel.sum())}
    for n in MEASURES:
        out[n] = int((meas[n] & sel).sum())
    return out


def summarize(rows, examples=5) -> dict:
    """Counts from agreement rows: ``overall``, ``classes`` {key: {label:
    counts}}, ``skipped`` {reason: n}, ``decisions`` {real kind: {peeked kind:
    n}}, ``gfp_masks`` (the most frequent masks per class), ``examples``
    ({"key=label": first trace lines that disagree}, lowest classes)."""
    rows = np.asarray(rows)
    skip = rows[:, core.R_SKIP] if len(rows) else np.zeros(0, np.int64)
    counted = skip == core.SK_NONE
    r = rows[counted]
    meas = _measures(r)
    labels = _labels(r)
    out = {"events": int(len(rows)), "counted": int(counted.sum()),
           "skipped": {core.SKIPS[k]: int((skip == k).sum())
                       for k in range(1, len(core.SKIPS)) if (skip == k).any()},
           "overall": _counts(meas, np.ones(len(r), bool)), "classes": {}}
    for key in BREAKDOWN_KEYS:
        lab = labels[key]
        out["classes"][key] = {str(v): _counts(meas, lab == v)
                               for v in sorted(set(lab.tolist()), key=_sort_key)}
    dec = {}
    rk, pk = r[:, core.R_REAL_KIND], r[:, core.R_PEEK_KIND]
    for a in sorted(set(rk.tolist())):
        sel = rk == a
        dec[KIND_NAMES[a]] = {KIND_NAMES[b]: int((pk[sel] == b).sum())
                              for b in sorted(set(pk[sel].tolist()))}
    out["decisions"] = dec
    masks = {}
    for lab in sorted(set(labels["gfp"].tolist())):
        g = r[labels["gfp"] == lab, core.R_GFP]
        vals, cnt = np.unique(g, return_counts=True)
        top = np.argsort(-cnt, kind="stable")[:3]
        masks[lab] = {format_gfp(int(vals[i])) if vals[i] >= 0 else "?": int(cnt[i])
                      for i in top}
    out["gfp_masks"] = masks
    ex = {}
    for key, label, _ in lowest_classes(out, 8):
        sel = (labels[key] == label) & ~meas["all"]
        ex[f"{key}={label}"] = r[sel, core.R_LINE][:examples].astype(int).tolist()
    out["examples"] = ex
    return out


def _sort_key(v):
    return (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v)


def lowest_classes(summary, n=None, min_events=1):
    """[(key, label, counts)] sorted by the share of events agreeing in all
    three measures, lowest first."""
    items = []
    for key, d in summary["classes"].items():
        for label, cnt in d.items():
            if cnt["events"] >= min_events:
                items.append((key, label, cnt))
    items.sort(key=lambda t: (t[2]["all"] / t[2]["events"], -t[2]["events"]))
    return items[:n] if n else items


def version_for_recording(manifest_path) -> str:
    """The peek's allocator variant for a recording: its kernel release
    (manifest.json) as spbsim.trace.manifest.policy_for_kernel maps it; 6.12
    when the manifest names none."""
    from .manifest import kernel_release, policy_for_kernel, read_manifest
    release = kernel_release(read_manifest(manifest_path))
    if not release:
        return "6.12"
    policy = policy_for_kernel(release)[0]
    return {"stock:6.1": "6.1", "stock": "recent"}.get(policy, "6.12")


def replay_agreement(trace_path, snapshots_dir, *, version="6.12", rule=None, lru=True,
                     heal=True, lenient=False, progress=False, manifest=None, max_lines=None,
                     start_tag="start", batch_size=1 << 16, keep_rows=False) -> dict:
    """Run the placement replay over a recording and compare, at every
    buddy-level allocation, the real decision with the peeked one.

    ``version`` picks the fallback rule (spbsim.trace.peek.rule_for_version)
    unless ``rule`` (a RULES name or code) is given.  ``lru``: count pages
    flagged LRU at the start or allocated movable since as movable in claim
    decisions (else the model's PG_lru heads, which the replay never sets).
    ``heal``: take the phantom buddies an event proves absent from the
    kernel's free lists off the state's (skip reason ``phantom``).
    Returns :func:`summarize`'s dict plus ``rule``, ``version``, ``stats``
    (waiting entries flushed unmatched, overflows), ``placement`` (the replay's
    residues and counters), ``trace``, ``seconds``; ``rows`` with ``keep_rows``.
    """
    t0 = time.monotonic()
    if rule is None:
        rule = rule_for_version(version)
    elif isinstance(rule, str):
        rule = RULES[rule]
    holder = {}

    def factory(machine):
        holder["rep"] = AgreementReplay(machine, rule, lru=lru, heal=heal)
        return holder["rep"]

    r = replay_placement(trace_path, snapshots_dir, lenient=lenient, progress=progress,
                         manifest=manifest, max_lines=max_lines, start_tag=start_tag,
                         compare_tags=(), batch_size=batch_size, replay_factory=factory)
    rep = holder["rep"]
    rows = rep.finish()
    out = summarize(rows)
    out.update({
        "version": version,
        "rule": {v: k for k, v in RULES.items()}[rule],
        "movable_pages": "lru" if lru else "model",
        "heal": bool(heal),
        "stats": {n: int(v) for n, v in zip(core.STATS, rep.totals) if n != "rows"},
        "placement": {"residues": r["residues"], "counters": r["counters"]},
        "trace": r["trace"],
        "seconds": round(time.monotonic() - t0, 2),
    })
    if keep_rows:
        out["rows"] = rows
    return out


def _pct(a, n):
    return f"{100.0 * a / n:6.1f}%" if n else "     -"


def format_table(result: dict, limit=None) -> str:
    """The overall agreement, then every class, lowest agreement first."""
    ov = result["overall"]
    lines = [f"decision-level agreement (kernel version {result.get('version', '?')}, "
             f"fallback rule {result.get('rule', '?')}): {result['events']:,} buddy-level "
             f"allocations, {result['counted']:,} counted"]
    if result["skipped"]:
        lines.append("skipped (state around the real pfn not the kernel's): " + ", ".join(
            f"{k} {v:,}" for k, v in result["skipped"].items()))
    head = f"{'class':<34} {'events':>9} " + " ".join(f"{m:>7}" for m in MEASURES)
    lines += ["", head]

    def row(name, c):
        return f"{name:<34} {c['events']:>9,} " + " ".join(
            _pct(c[m], c["events"]) for m in MEASURES)

    lines.append(row("overall", ov))
    for key, label, c in lowest_classes(result, limit):
        lines.append(row(f"{key}={label}", c))
    lines.append("")
    lines.append("real decision -> peeked decision: " + "; ".join(
        f"{a}: " + ", ".join(f"{b} {n:,}" for b, n in d.items())
        for a, d in result["decisions"].items()))
    st = result.get("stats", {})
    if any(st.values()):
        lines.append("waiting entries: " + ", ".join(f"{k}={v:,}" for k, v in st.items() if v))
    if "trace" in result:
        lines.append(f"{result['trace']['lines']} lines in {result['seconds']} s")
    return "\n".join(lines) + "\n"
