"""``spbsim validate --ensemble N``: the fidelity check repeated over draws of
the start state /proc does not show (spbsim.trace.start.draw_hidden_state),
on dask.distributed, to tell a model's miss from the spread that state alone
causes, and which zone-snapshots the recording resolves at all.
docs/validate.md explains the output.
"""
from __future__ import annotations

import statistics
import sys

from spbsim.errors import SpbsimError

__all__ = ["validate_ensemble", "member_summary", "spread", "resolution", "format_ensemble",
           "ENSEMBLE_TARGETS"]

#: the per zone-snapshot targets an ensemble counts, as validate's row keys
ENSEMBLE_TARGETS = ("ok_ge9", "ok_l1", "ok_pb")


def member_summary(out) -> dict:
    """What one validate result contributes to an ensemble: its seed, the
    summary counts, the failures, the end snapshot per zone and each
    zone-snapshot's targets."""
    from spbsim.trace.validate import end_row
    rows = out["rows"]
    s = out["summary"]
    end = end_row(rows)
    return {
        "seed": out.get("start_seed"),
        "within_targets": s["within_targets"],
        "targets_met": dict(s["targets_met"]),
        "sim_failures": int(sum(out["whatif"]["sim_failures_by_order"])),
        "failures_near": (out.get("failures") or {}).get("near"),
        "oom_sim": None if end is None else end["oom_sim"],
        "checksum": out["whatif"]["checksum"],
        "end": {} if end is None else {
            z: {"ge9_sim": m["ge9_sim"], "ge9_real": m["ge9_real"], "l1_pct": m["l1_pct"],
                "ok_pb": m["ok_pb"]} for z, m in end["zones"].items()},
        "zone_ok": {f"{r['seq']}:{z}": [m[k] for k in ENSEMBLE_TARGETS]
                    for r in rows for z, m in r["zones"].items()},
        "snapshot_ok": {str(r["seq"]): bool(r["ok"]) for r in rows},
        # the simulated state per zone-snapshot, for the runs' distance to each other
        "zone_state": {f"{r['seq']}:{z}": {"nr_free": list(m["nr_free_sim"]),
                                           "pageblocks": m.get("pb_sim")}
                       for r in rows for z, m in r["zones"].items()},
    }


def _member(job):
    """One ensemble member (runs on a dask worker).  Bad input comes back as
    {"error": message}, so the worker logs no traceback for it."""
    from spbsim.trace.validate import validate
    kw = dict(job)
    path = kw.pop("path")
    try:
        return member_summary(validate(path, **kw))
    except SpbsimError as e:
        return {"error": str(e)}


def _range(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"min": min(v), "median": statistics.median(v), "max": max(v)}


def _met(target, value) -> bool:
    """A zone-snapshot's target as validate's summary counts it: a pageblock
    target without the kernel's counts (None) is not missed, the others need
    a True."""
    return value is not False if target == "ok_pb" else bool(value)


def spread(members) -> dict:
    """The members' spread: for each summary count, failures and end value,
    min / median / max and the unperturbed member's value (seed None); for
    each per zone-snapshot target, in how many zone-snapshots every member
    met it and in how many at least one did."""
    base = next((m for m in members if m["seed"] is None), None)
    out = {"members": len(members), "counts": {}, "end": {}, "zone_snapshots": {}}

    def put(key, values, base_value):
        out["counts"][key] = dict(_range(values) or {}, base=base_value)

    put("within_targets", [m["within_targets"] for m in members],
        base and base["within_targets"])
    for k in members[0]["targets_met"]:
        put(k, [m["targets_met"][k] for m in members], base and base["targets_met"][k])
    put("sim_failures", [m["sim_failures"] for m in members], base and base["sim_failures"])
    put("failures_near", [m.get("failures_near") for m in members],
        base and base.get("failures_near"))
    put("oom_sim", [m["oom_sim"] for m in members], base and base["oom_sim"])
    for z in members[0]["end"]:
        out["end"][z] = {
            "ge9_real": members[0]["end"][z]["ge9_real"],
            "ge9_sim": dict(_range([m["end"][z]["ge9_sim"] for m in members]) or {},
                            base=base and base["end"][z]["ge9_sim"]),
            "l1_pct": dict(_range([m["end"][z]["l1_pct"] for m in members]) or {},
                           base=base and base["end"][z]["l1_pct"]),
        }
    keys = list(members[0]["zone_ok"])
    for i, t in enumerate(ENSEMBLE_TARGETS):
        met = [[_met(t, m["zone_ok"][k][i]) for m in members] for k in keys]
        out["zone_snapshots"][t[3:]] = {"all": sum(all(x) for x in met),
                                        "any": sum(any(x) for x in met),
                                        "of": len(keys)}
    snaps = list(members[0]["snapshot_ok"])
    met = [[m["snapshot_ok"][k] for m in members] for k in snaps]
    out["zone_snapshots"]["snapshots_within"] = {"all": sum(all(x) for x in met),
                                                 "any": sum(any(x) for x in met),
                                                 "of": len(snaps)}
    out["resolution"] = resolution(members)
    return out


def resolution(members) -> dict | None:
    """Which zone-snapshots the recording resolves, per target: those where
    every run meets the target against every other run (each in turn taken
    as the real side of spbsim.trace.validate.zone_metrics).  Where two runs
    that differ only in state the recording cannot show end further apart
    than the target, the kernel is one more such run, and the target cannot
    tell the model from that state.  Per target: ``resolved`` zone-snapshots,
    ``met`` (of those, the ones the run as recorded meets against the
    kernel) and ``of``.  None with fewer than two runs or without the
    runs' states."""
    from spbsim.trace.validate import zone_metrics
    if len(members) < 2 or any("zone_state" not in m for m in members):
        return None
    base = next((m for m in members if m["seed"] is None), members[0])
    keys = list(base["zone_state"])
    out = {t[3:]: {"resolved": 0, "met": 0, "of": len(keys)} for t in ENSEMBLE_TARGETS}
    for k in keys:
        st = [m["zone_state"][k] for m in members]
        agree = dict.fromkeys(ENSEMBLE_TARGETS, True)
        for a in range(len(st)):
            for b in range(len(st)):
                if a == b:
                    continue
                zm = zone_metrics(st[a]["nr_free"], st[b]["nr_free"],
                                  st[a]["pageblocks"], st[b]["pageblocks"])
                for t in ENSEMBLE_TARGETS:
                    agree[t] = agree[t] and _met(t, zm.get(t))
        for i, t in enumerate(ENSEMBLE_TARGETS):
            if agree[t]:
                out[t[3:]]["resolved"] += 1
                out[t[3:]]["met"] += _met(t, base["zone_ok"][k][i])
    return out


def validate_ensemble(path, draws, *, policy=None, memory=None, low_memory=None, cpus=None,
                      max_lines=None, workers=None, scheduler=None, progress=False) -> dict:
    """Validate ``path`` once as is and once per start-state draw (seeds 1 ..
    ``draws``), each run on a dask worker (a LocalCluster of ``workers``
    processes on 127.0.0.1, default the core count, or the running scheduler
    at ``scheduler``).  Returns {recording, label, policy, draws, members,
    spread}.  Bad input raises before any worker starts."""
    from spbsim.sweep import _start_client, default_workers
    from spbsim.trace.validate import _real_side, open_recording, recorded_machine
    if draws < 1:
        raise SpbsimError(f"--ensemble {draws}: needs at least one draw")
    if workers is not None and workers < 1:
        raise SpbsimError(f"--workers {workers}: needs at least one")
    if workers is not None and scheduler:
        raise SpbsimError("--workers is for the local cluster: a --scheduler's cluster has "
                          "its own dask workers")
    rec = open_recording(path)
    rm = recorded_machine(rec, policy=policy, memory=memory, low_memory=low_memory, cpus=cpus)
    for s in rec.index:
        _real_side(s, rm.zones)
    common = dict(path=str(path), policy=policy, memory=memory, low_memory=low_memory,
                  cpus=cpus, max_lines=max_lines)
    jobs = [dict(common, start_seed=seed) for seed in [None] + list(range(1, draws + 1))]
    from dask.distributed import as_completed
    from tqdm import tqdm
    client, cluster = _start_client(min(workers or default_workers(), len(jobs)), scheduler,
                                    False, None)
    members = []
    bar = tqdm(total=len(jobs), unit="run", desc="ensemble", file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True)
    try:
        if scheduler and not client.scheduler_info().get("workers"):
            print(f"spbsim validate: {scheduler} has no workers yet: waiting for one "
                  f"(start them with: dask worker {scheduler} --nthreads 1)", file=sys.stderr)
            client.wait_for_workers(1)
        futures = [client.submit(_member, j, pure=False) for j in jobs]
        seed_of = {f.key: j["start_seed"] for f, j in zip(futures, jobs)}
        for fut in as_completed(futures):
            got = fut.result()
            if "error" in got:
                seed = seed_of[fut.key]
                label = "as recorded" if seed is None else f"start seed {seed}"
                raise SpbsimError(f"ensemble run {label}: {got['error']}")
            members.append(got)
            fut.release()
            bar.update(1)
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    members.sort(key=lambda m: -1 if m["seed"] is None else m["seed"])
    if len({m["checksum"] for m in members}) != 1:
        raise SpbsimError(f"{path}: the ensemble's runs saw different request streams")
    return {"recording": rec.name, "path": str(rec.path), "label": rm.label,
            "policy": rm.policy, "draws": draws, "max_lines": max_lines,
            "members": members, "spread": spread(members)}


def _fmt(r, pct=False):
    if not r or "min" not in r:
        return "-"
    f = (lambda x: f"{x:.0f}%") if pct else (lambda x: f"{x:g}")
    return f"{f(r['base'])} [{f(r['min'])}..{f(r['max'])}]" if r.get("base") is not None \
        else f"[{f(r['min'])}..{f(r['max'])}]"


def format_ensemble(ens) -> str:
    """A table: each count as the unperturbed value [min..max over all
    members], then per target the zone-snapshots met by every member and by
    at least one."""
    sp = ens["spread"]
    c = sp["counts"]
    lines = [f"{ens['recording']} [{ens['label']}, policy {ens['policy']}]: "
             f"{sp['members']} runs (as recorded + {ens['draws']} start-state draws), "
             f"value as recorded [min..max]"]
    of = c["zone_snapshots"]["base"]
    lines.append(f"  snapshots within targets   {_fmt(c['within_targets'])}")
    for k in ("ge9", "l1", "pageblocks"):
        lines.append(f"  {k + ' ok':<26} {_fmt(c[k])} of {of} zone-snapshots")
    lines.append(f"  sim failures               {_fmt(c['sim_failures'])}")
    if c["sim_failures"].get("max") and "max" in c.get("failures_near", {}):
        from spbsim.trace.validate import FAILURE_NEAR_S
        label = f"near the kernel's ({FAILURE_NEAR_S:g} s)"
        lines.append(f"    {label:<24} {_fmt(c['failures_near'])}")
    lines.append(f"  OOM kills                  {_fmt(c['oom_sim'])}")
    for z, e in sp["end"].items():
        lines.append(f"  end {z:<7} >=9 blocks     {_fmt(e['ge9_sim'])} (kernel "
                     f"{e['ge9_real']}), L1 {_fmt(e['l1_pct'], pct=True)}")
    zs = sp["zone_snapshots"]
    lines.append("  met by every run / by at least one: " + "; ".join(
        f"{k} {v['all']}/{v['any']} of {v['of']}" for k, v in zs.items()))
    res = sp.get("resolution")
    if res:
        lines.append("  resolved (every run within the target of every other) / met there "
                     "as recorded: " + "; ".join(
                         f"{k} {v['resolved']}/{v['met']} of {v['of']}" for k, v in res.items()))
    return "\n".join(lines) + "\n"
