"""Run one scenario under several policies and seeds; tabulate the outcome.

    table = run_compare("kbuild", ["stock", "stock:defrag"], seeds=3,
                        out_dir="results/cmp-kbuild", jobs=2)

Every (policy, seed) runs in its own process into ``out_dir/<policy>/seed<N>/``.
Runs of one seed must see the same request stream (``request_checksum``), else
:class:`CompareError`.  The table follows mmtests' compare-kernels: mean over
seeds, 95 % Student's t half-width and % change against the first policy;
written to ``compare.csv``, ``compare.md`` and ``compare.json`` (docs/results.md).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import sys

import numpy as np

from ..engine.rundir import finish_run_directory, run_into, save_pageblocks  # noqa: F401 (moved)
from ..errors import SpbsimError
from ..results import PAGEBLOCKS  # noqa: F401 (re-exported for report.html)

__all__ = ["CompareError", "METRICS", "run_compare", "build_table", "format_text",
           "format_markdown", "write_outputs", "metric_values", "policy_dirname",
           "t_quantile_975", "run_one", "check_paired"]

COMPARE_JSON = "compare.json"
#: written into compare.json; the report reads this version (absent: 1, the
#: layout before the key was added)
COMPARE_FORMAT_VERSION = 1


class CompareError(SpbsimError):
    """A comparison that cannot be made (unpaired streams, failed runs, bad arguments)."""


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------

def _g(*path):
    def get(s):
        v = s
        for p in path:
            if not isinstance(v, dict) or p not in v:
                return None
            v = v[p]
        return v
    return get


def _sum(*getters):
    def get(s):
        vals = [g(s) for g in getters]
        if any(v is None for v in vals):
            return None
        return sum(vals)
    return get


def _census(key, only=None):
    def get(s):
        cen = s.get("census")
        if not isinstance(cen, dict):
            return None
        if only is not None:
            return (cen.get(only) or {}).get(key)
        return sum(v.get(key, 0) for v in cen.values())
    return get


def _ratio(num, den):
    def get(s):
        a, b = num(s), den(s)
        if a is None or not b:
            return None
        return a / b
    return get


#: (name, getter(summary) -> number | None, higher_is_better or None)
METRICS = [
    ("1 GB pages free", _g("hugepages", "1g_free"), True),
    ("1 GB pages obtainable", _g("hugepages", "1g_obtainable"), True),
    ("2 MB blocks free", _g("hugepages", "2m_free"), True),
    ("2 MB blocks obtainable", _g("hugepages", "2m_obtainable"), True),
    ("THP fault success rate", _g("thp_fault_success_rate"), True),
    ("Tainted SPBs", _g("spb_tainted"), False),
    ("Polluted pageblocks", _census("polluted"), False),
    ("Polluted Movable pageblocks", _census("polluted", "Movable"), False),
    ("Fallback claims", _g("sim", "sim_claim_success"), False),
    ("Fallback whole-block claims", _g("sim", "sim_claim_whole_block"), False),
    ("Fallback steals", _g("sim", "sim_steal"), False),
    ("Pages migrated", _g("vmstat", "pgmigrate_success"), None),
    ("Pages reclaimed", _sum(_g("vmstat", "pgsteal_kswapd"), _g("vmstat", "pgsteal_direct")),
     None),
    ("Compaction stalls", _g("vmstat", "compact_stall"), False),
    ("Free lists visited per allocation",
     _ratio(_g("sim", "sim_freelists_visited"), _g("sim", "sim_alloc_requests")), False),
    ("Allocation failures", _g("sim", "sim_alloc_fail"), False),
    ("hugetlb 1 GB attempts", _g("hugetlb_1g", "attempts"), None),
    ("hugetlb 1 GB success", _g("hugetlb_1g", "success"), True),
    ("Pages migrated per 1 GB obtained",
     _ratio(_g("hugetlb_1g", "attempt_migrated_pages"), _g("hugetlb_1g", "success")), False),
    ("Large blocks split for 1 GB attempts", _g("hugetlb_1g", "splits"), None),
    # the SPB allocator's own (absent, shown n/a, for stock)
    ("Stuck SPBs", _g("stuck_spbs"), False),
    ("SPBs visited per __rmqueue_smallest", _g("spb_allocator", "spbs_visited_per_walk"), False),
    ("SPB taints by PASS_3", _g("spb_allocator", "taint_by_pass", "pass_3"), False),
    ("SPB defrag runs", _g("spb_allocator", "stats", "spb_defrag_runs"), None),
    ("SPB defrag runs without progress", _g("spb_allocator", "stats", "spb_defrag_no_progress"),
     False),
]

#: per-migratetype-pair fallback counters, if a summary carries them:
#: summary["fallback_pairs"] = {"Unmovable->Movable": {"claim": n, "steal": n}, ...}
PAIR_KEY = "fallback_pairs"


def metric_list(summaries):
    """METRICS plus per-pair claim/steal rows when any summary has them."""
    out = list(METRICS)
    pairs = set()
    for s in summaries:
        fp = s.get(PAIR_KEY)
        if isinstance(fp, dict):
            for pair, d in fp.items():
                if isinstance(d, dict):
                    pairs.update((pair, k) for k in d)
    for pair, kind in sorted(pairs):
        out.append((f"Fallback {kind} {pair}", _g(PAIR_KEY, pair, kind), False))
    return out


def metric_values(summary, metrics=None):
    """{metric name: float or nan} for one run's summary."""
    res = {}
    for name, get, _ in metrics or METRICS:
        try:
            v = get(summary)
        except (TypeError, KeyError, ValueError):
            v = None
        res[name] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
            and v is not None else math.nan
    return res


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------

_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile_975(df):
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    try:
        from scipy.stats import t
        return float(t.ppf(0.975, df))
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


def _stats(values):
    v = np.asarray([x for x in values if not math.isnan(x)], float)
    n = v.size
    if n == 0:
        return {"n": 0, "mean": math.nan, "ci95": math.nan, "min": math.nan, "max": math.nan}
    mean = float(v.mean())
    half = float(t_quantile_975(n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"n": int(n), "mean": mean, "ci95": half, "min": float(v.min()), "max": float(v.max())}


def _delta(mean, base):
    if math.isnan(mean) or math.isnan(base):
        return math.nan
    if base == 0:
        return 0.0 if mean == 0 else (math.inf if mean > 0 else -math.inf)
    return 100.0 * (mean - base) / abs(base)


def build_table(runs, policies, seeds):
    """runs: {(policy, seed): summary}.  Returns the table as a dict
    ``{"policies", "seeds", "rows": [{"metric", "higher_is_better", "cells":
    {policy: {"n", "mean", "ci95", "min", "max", "delta_pct", "values"}}}]}``."""
    metrics = metric_list(runs.values())
    vals = {k: metric_values(s, metrics) for k, s in runs.items()}
    rows = []
    for name, _, better in metrics:
        cells = {}
        for p in policies:
            xs = [vals[(p, sd)][name] for sd in seeds if (p, sd) in vals]
            c = _stats(xs)
            c["values"] = xs
            cells[p] = c
        base = cells[policies[0]]["mean"]
        for p in policies:
            cells[p]["delta_pct"] = _delta(cells[p]["mean"], base)
        rows.append({"metric": name, "higher_is_better": better, "cells": cells})
    return {"policies": list(policies), "seeds": list(seeds), "rows": rows}


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------

def _num(x, big=None):
    """Fixed decimals per row: 4 for small quantities (rates), else 2, with separators."""
    if math.isnan(x):
        return "n/a"
    big = abs(x) if big is None else big
    return f"{x:.4f}" if big < 10 else f"{x:,.2f}"


def _row_scale(row):
    """The row's largest |mean|; 10 if every value is a whole number (counts get 2
    decimals, fractions below 10 get 4)."""
    vals = [v for c in row["cells"].values() for v in c["values"] if not math.isnan(v)]
    if vals and all(float(v).is_integer() for v in vals):
        return 10.0
    ms = [abs(c["mean"]) for c in row["cells"].values() if not math.isnan(c["mean"])]
    return max(ms) if ms else 0.0


def _cell(c, big=None):
    s = _num(c["mean"], big)
    if c["n"] > 1 and not math.isnan(c["ci95"]):
        s += f" ± {_num(c['ci95'], big)}"
    return s


def _pct(d):
    if math.isnan(d):
        return "(    n/a)"
    if math.isinf(d):
        return "(   +inf)" if d > 0 else "(   -inf)"
    return f"({d:+7.2f}%)"


def _cells_text(table):
    pols = table["policies"]
    out = []
    for r in table["rows"]:
        line = [r["metric"]]
        big = _row_scale(r)
        for i, p in enumerate(pols):
            c = r["cells"][p]
            line.append(_cell(c, big) if i == 0 else f"{_cell(c, big)} {_pct(c['delta_pct'])}")
        out.append(line)
    return out


def format_text(table, checksums=None):
    """mmtests compare-kernels style plain-text table."""
    pols = table["policies"]
    body = _cells_text(table)
    head = [""] + pols
    widths = [max(len(x[i]) for x in body + [head]) for i in range(len(head))]
    lines = []
    lines.append("  ".join([head[0].ljust(widths[0])] + [h.rjust(w) for h, w in
                                                          zip(head[1:], widths[1:])]))
    for row in body:
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                             zip(row[1:], widths[1:])]))
    n = len(table["seeds"])
    lines.append("")
    lines.append(f"mean over {n} seed{'s' if n != 1 else ''} "
                 f"({', '.join(map(str, table['seeds']))})"
                 + (", ± 95 % confidence half-width (t distribution)" if n > 1 else "")
                 + f"; (%) change against {pols[0]}")
    if checksums:
        lines.append("paired request streams: " + ", ".join(
            f"seed {sd} {cs}" for sd, cs in sorted(checksums.items())))
    return "\n".join(lines) + "\n"


def format_markdown(table, checksums=None):
    pols = table["policies"]
    lines = ["| metric | " + " | ".join(pols) + " |",
             "|---|" + "---:|" * len(pols)]
    for row in _cells_text(table):
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |")
    n = len(table["seeds"])
    lines.append("")
    lines.append(f"Mean over {n} seed(s) {table['seeds']}"
                 + (", ± 95 % confidence half-width (Student's t)" if n > 1 else "")
                 + f"; (%) change against `{pols[0]}`.")
    if checksums:
        lines.append("")
        lines.append("Request checksums (paired): " + ", ".join(
            f"seed {sd} `{cs}`" for sd, cs in sorted(checksums.items())))
    return "\n".join(lines) + "\n"


def format_csv(table):
    pols = table["policies"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["metric"] + [f"{p}:{k}" for p in pols for k in
                             ("mean", "ci95", "min", "max", "n", "delta_pct")])
    for r in table["rows"]:
        row = [r["metric"]]
        for p in pols:
            c = r["cells"][p]
            row += [_csvnum(c["mean"]), _csvnum(c["ci95"]), _csvnum(c["min"]),
                    _csvnum(c["max"]), c["n"], _csvnum(c["delta_pct"])]
        w.writerow(row)
    return buf.getvalue()


def _csvnum(x):
    if isinstance(x, float) and math.isnan(x):
        return ""
    return repr(float(x)) if isinstance(x, float) else x


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None if math.isnan(o) else ("inf" if o > 0 else "-inf")
    return o


def write_outputs(out_dir, table, meta):
    """compare.csv, compare.md, compare.json in out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    checks = meta.get("request_checksums")
    paths = {}
    for name, text in (("compare.csv", format_csv(table)),
                       ("compare.md", format_markdown(table, checks)),
                       (COMPARE_JSON, json.dumps(_jsonable({**meta, "table": table}),
                                                 indent=1) + "\n")):
        p = os.path.join(out_dir, name)
        tmp = p + f".tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
        paths[name] = p
    return paths


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def policy_dirname(policy):
    """A policy name as a directory name: ``stock:defrag`` -> ``stock_defrag``."""
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in str(policy))


def _scenario_for(scenario, overrides, seed):
    from ..scenario import load_scenario
    if isinstance(scenario, (str, os.PathLike)):
        ov = dict(overrides or {})
        if seed is not None:
            ov["scenario.seed"] = str(seed)
        return load_scenario(scenario, ov or None)
    if overrides:
        raise CompareError("overrides apply to a scenario name or path, not to a Scenario "
                           "object")
    return dataclasses.replace(scenario, seed=int(seed)) if seed is not None else scenario


def run_one(job):
    """Run one (policy, seed) and write its results directory.  Runs in a dask
    worker process (or in this one with jobs=1); returns {"policy", "seed",
    "dir", "summary"} or {"error": message}."""
    try:
        return _run_one(job)
    except SpbsimError as e:
        return {"policy": job["policy"], "seed": job["seed"], "error": str(e)}


def _run_one(job):
    from ..engine.run import Simulation
    from .. import __version__
    sc = _scenario_for(job["scenario"], job["overrides"], job["seed"])
    sim = Simulation(sc, policy=job["policy"])
    text = None
    if sc.path:
        with open(sc.path, encoding="utf-8") as f:
            text = f.read()
    elif job.get("scenario_text"):
        text = job["scenario_text"]
    params = {"scenario": sc.name, "policy": sim.policy, "seed": sc.seed, "memory": sc.memory,
              "overrides": dict(job["overrides"] or {}), "version": __version__,
              "compare": True}
    out = job["dir"]
    summary = run_into(sim, out, params, text)
    return {"policy": job["policy"], "seed": job["seed"], "dir": out, "summary": summary}


def _seed_list(seeds, base):
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise CompareError(f"seeds {seeds}: need at least 1")
        return [int(base) + i for i in range(int(seeds))]
    out = [int(s) for s in seeds]
    if not out:
        raise CompareError("no seeds given")
    if len(set(out)) != len(out):
        raise CompareError(f"seeds {out}: repeated seed")
    return out


def run_compare(scenario_name_or_path, policies, seeds=1, out_dir="results/compare",
                overrides=None, jobs=2, progress=True, echo=None):
    """Run the scenario under every policy and seed (``seeds``: a count, seeds
    base..base+K-1 where base is the scenario's seed, or a list of seeds) in
    ``jobs`` worker processes of a dask LocalCluster (as spbsim sweep; 1: in this
    process); write the table files; return the table dict (with
    "text", "request_checksums", "runs" added).  ``echo(str)`` prints (default:
    stdout for the table, stderr for progress)."""
    from ..policy import Policy
    policies = [str(p) for p in policies]
    if not policies:
        raise CompareError("no policies given")
    if len(set(policies)) != len(policies):
        raise CompareError(f"policies {policies}: a policy is repeated")
    for p in policies:
        Policy.parse(p)              # ConfigError for unknown/unbuilt policies, before any run
    dirnames = [policy_dirname(p) for p in policies]
    if len(set(dirnames)) != len(dirnames):
        raise CompareError(f"policies {policies}: their directory names collide")
    if jobs < 1:
        raise CompareError(f"jobs {jobs}: need at least 1")
    base_sc = _scenario_for(scenario_name_or_path, overrides, None)   # validates now
    seed_list = _seed_list(seeds, base_sc.seed)
    scen = scenario_name_or_path
    if isinstance(scen, os.PathLike):
        scen = os.fspath(scen)
    out_dir = os.fspath(out_dir)
    jobs_list = [{"scenario": scen, "overrides": dict(overrides or {}), "policy": p,
                  "seed": sd, "dir": os.path.join(out_dir, dn, f"seed{sd}")}
                 for p, dn in zip(policies, dirnames) for sd in seed_list]

    def say(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    say(f"spbsim compare: {base_sc.name}: {len(policies)} policies x {len(seed_list)} seeds "
        f"= {len(jobs_list)} runs, {min(jobs, len(jobs_list))} at a time")
    results = []
    if jobs == 1 or len(jobs_list) == 1:
        for j in jobs_list:
            r = run_one(j)
            results.append(r)
            _report_done(say, r, len(results), len(jobs_list))
    else:
        # the sweep's runner: a dask LocalCluster of `jobs` worker processes
        from dask.distributed import as_completed

        from ..sweep import _start_client
        client, cluster = _start_client(min(jobs, len(jobs_list)), None, False, None)
        futs = []
        try:
            futs = [client.submit(run_one, j, pure=False) for j in jobs_list]
            for f in as_completed(futs):
                r = f.result()
                results.append(r)
                _report_done(say, r, len(results), len(jobs_list))
        except KeyboardInterrupt:
            for f in futs:
                f.cancel()
            raise
        finally:
            client.close()
            cluster.close()
    errors = [r for r in results if "error" in r]
    if errors:
        raise CompareError("; ".join(f"{r['policy']} seed {r['seed']}: {r['error']}"
                                     for r in errors))
    runs = {(r["policy"], r["seed"]): r["summary"] for r in results}
    checksums = check_paired(runs, policies, seed_list)
    table = build_table(runs, policies, seed_list)
    text = format_text(table, checksums)
    meta = {"format_version": COMPARE_FORMAT_VERSION,
            "scenario": base_sc.name, "policies": policies, "seeds": seed_list,
            "overrides": dict(overrides or {}), "request_checksums": checksums,
            "runs": {p: {str(sd): os.path.relpath(os.path.join(out_dir, dn, f"seed{sd}"),
                                                  out_dir) for sd in seed_list}
                     for p, dn in zip(policies, dirnames)},
            "interrupted": [f"{p} seed {sd}" for (p, sd), s in runs.items()
                            if s.get("interrupted")]}
    paths = write_outputs(out_dir, table, meta)
    if progress:
        (echo or print)(text.rstrip("\n"))
    return {**table, "text": text, "request_checksums": checksums, "runs": meta["runs"],
            "files": paths, "summaries": runs}


def check_paired(runs, policies, seeds):
    """{seed: request_checksum}; CompareError if the runs of a seed differ."""
    checksums = {}
    for sd in seeds:
        got = {p: runs[(p, sd)].get("request_checksum") for p in policies}
        if len(set(got.values())) != 1:
            raise CompareError(f"seed {sd}: the runs saw different request streams, so they "
                               f"are not paired: " + ", ".join(f"{p} {c}" for p, c in
                                                               got.items()))
        checksums[sd] = next(iter(got.values()))
    return checksums


def _report_done(say, r, k, n):
    if "error" in r:
        say(f"  [{k}/{n}] {r['policy']} seed {r['seed']}: FAILED: {r['error']}")
    else:
        s = r["summary"]
        say(f"  [{k}/{n}] {r['policy']} seed {r['seed']}: {s['requests']:,} requests in "
            f"{s['wall_s']:.1f} s, checksum {s['request_checksum']}")
