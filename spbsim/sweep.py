"""``spbsim sweep``: policies x seeds x grid values, one simulation per cell, on
dask.distributed (a local cluster of worker processes, or a running scheduler).

Each finished run becomes one row: a one-row ``DIR/parts/<cell>.parquet`` at
once, and the consolidated ``DIR/sweep.parquet`` rewritten as rows arrive.  A
cell is keyed by a hash of the scenario text, its overrides, the policy, the
seed and spbsim's version, so the same command again skips finished cells.
Runs of one (grid cell, seed) see the same request stream under every policy.
Columns, resume rules and cluster set-up: docs/sweep.md.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import sys
import time

from .errors import SpbsimError
from .results import (META_COLUMNS, PARTS, SWEEP_FORMAT_VERSION, SWEEP_JSON,  # noqa: F401
                      SWEEP_PARQUET, ordered_frame)

__all__ = ["SweepError", "parse_grid", "split_values", "plan_sweep", "run_sweep", "run_cell",
           "flatten_summary", "SWEEP_PARQUET", "SWEEP_JSON", "PARTS", "RUNS",
           "SWEEP_FORMAT_VERSION", "META_COLUMNS"]

RUNS = "runs"
#: the consolidated file is rewritten at most this often (and at the end)
CONSOLIDATE_EVERY_S = 2.0


class SweepError(SpbsimError):
    """A sweep that cannot be planned (bad grid, unknown key, bad policy)."""


# ---------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------

def split_values(text, where="--grid"):
    """'1G,2G' -> ['1G', '2G']; commas inside {...}, [...] or quotes do not split
    (``lifetime={dist="exp", mean="3s"},{dist="exp", mean="9s"}``)."""
    out, cur, depth, quote = [], [], 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth < 0:
                raise SweepError(f"{where}: unbalanced {ch!r} in {text!r}")
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if quote or depth:
        raise SweepError(f"{where}: unbalanced {'quote' if quote else 'bracket'} in {text!r}")
    out.append("".join(cur).strip())
    return out


def parse_grid(items):
    """['memory=1G,2G', 'spb.pass_2d=true,false'] -> [(key, [values])]."""
    grid = []
    for item in items:
        key, eq, vals = str(item).partition("=")
        key = key.strip()
        if not eq or not key or not vals.strip():
            raise SweepError(f"--grid {item!r}: expected KEY=V1,V2,... (e.g. --grid memory=4G,8G)")
        values = split_values(vals, f"--grid {key}")
        if any(v == "" for v in values):
            raise SweepError(f"--grid {item!r}: an empty value (two commas, or one at an end)")
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise SweepError(f"--grid {key}: value {dup[0]!r} is repeated")
        grid.append((key, values))
    return grid


def _scenario_source(scenario, overrides):
    """(text, label, Scenario) of a built-in name or a .toml path, validated
    with the fixed overrides (ScenarioError otherwise)."""
    from .scenario import load_scenario
    sc = load_scenario(scenario, overrides or None)
    with open(sc.path, encoding="utf-8") as f:
        text = f.read()
    arg = os.fspath(scenario)
    label = arg if os.path.isfile(arg) else os.path.basename(sc.path)
    return text, label, sc


def _canonical(raw, key, value, label, flag):
    """The key path an override names (``memory`` -> ``scenario.memory``,
    ``source.anon.rate`` -> ``source[1].rate``); SweepError for unknown keys."""
    from .scenario import ScenarioError, _apply_overrides
    try:
        done = _apply_overrides(copy.deepcopy(raw), {key: value}, label)
    except ScenarioError as e:
        raise SweepError(str(e).replace(f"--set {key}", f"{flag} {key}", 1)) from None
    (canon,) = done
    if canon.startswith("spb."):
        from .mm.spb.params import SPB_SWITCHES
        name = canon[4:]
        if name not in SPB_SWITCHES:
            import difflib
            close = difflib.get_close_matches(name, list(SPB_SWITCHES), n=1)
            raise SweepError(f"{flag} {key}: unknown SPB switch {name!r}"
                             + (f"; did you mean 'spb.{close[0]}'?" if close else "")
                             + " (docs/spb.md lists the switches)")
    return canon


def cell_key(scenario_text, overrides, policy, seed, version):
    """16 hex digits naming one run: scenario text, overrides (canonical key ->
    value), policy, seed and spbsim version."""
    blob = json.dumps({"scenario": scenario_text, "overrides": sorted(overrides.items()),
                       "policy": policy, "seed": int(seed), "version": version},
                      sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plan_sweep(scenario, policies=(), seeds=1, grid=(), overrides=None, out_dir=None,
               keep_runs=False):
    """Validate everything and list the cells; returns (meta, jobs).  ``grid``:
    [(key, [values])] or {key: [values]}; ``seeds``: a count (the scenario's
    seed and the next ones) or a list.  SweepError / ScenarioError for bad
    input, before anything runs."""
    import tomllib

    from . import __version__
    from .policy import Policy
    overrides = {str(k): str(v) for k, v in (overrides or {}).items()}
    grid = list(grid.items()) if isinstance(grid, dict) else list(grid)
    grid = [(str(k), [str(v) for v in vs]) for k, vs in grid]
    text, label, base = _scenario_source(scenario, overrides)
    policies = [str(p) for p in policies] or [base.policy]
    if len(set(policies)) != len(policies):
        raise SweepError(f"--policy: {policies}: a policy is repeated")
    for p in policies:
        Policy.parse(p)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SweepError(f"--seeds {seeds}: need at least 1")
        seed_list = [base.seed + i for i in range(seeds)]
    else:
        seed_list = [int(s) for s in seeds]
        if not seed_list or len(set(seed_list)) != len(seed_list):
            raise SweepError(f"seeds {seed_list}: need distinct seeds")
    raw = tomllib.loads(text)
    fixed = {}
    for k, v in overrides.items():
        fixed[_canonical(raw, k, v, label, "--set")] = v
    canon = {}
    for key, values in grid:
        if not values:
            raise SweepError(f"--grid {key}: no values")
        c = _canonical(raw, key, values[0], label, "--grid")
        if c == "scenario.seed":
            raise SweepError(f"--grid {key}: seeds are an axis of their own: use --seeds")
        if c == "scenario.policy":
            raise SweepError(f"--grid {key}: policies are an axis of their own: use --policy")
        if c in canon.values():
            other = next(k for k, cc in canon.items() if cc == c)
            raise SweepError(f"--grid {key}: the same key as --grid {other}")
        if c in fixed:
            raise SweepError(f"--grid {key}: also given with --set (or --memory, --duration)")
        canon[key] = c
    keys = [k for k, _ in grid]
    combos = list(itertools.product(*[vs for _, vs in grid])) if grid else [()]
    out_dir = os.path.abspath(os.fspath(out_dir)) if out_dir is not None else None
    jobs = []
    for combo in combos:
        gv = dict(zip(keys, combo))
        for sd in seed_list:
            for p in policies:
                ov_canon = dict(fixed) | {canon[k]: v for k, v in gv.items()}
                cell = cell_key(text, ov_canon, p, sd, __version__)
                ov = dict(overrides) | gv | {"scenario.seed": str(sd)}
                jobs.append({"cell": cell, "scenario_text": text, "label": label,
                             "overrides": ov, "policy": p, "seed": sd, "grid": gv,
                             "version": __version__,
                             "run_dir": os.path.join(out_dir, RUNS, cell)
                             if keep_runs and out_dir else None})
    meta = {"format_version": SWEEP_FORMAT_VERSION, "scenario": base.name, "scenario_label": label,
            "policies": policies, "seeds": seed_list, "grid": [[k, vs] for k, vs in grid],
            "grid_keys": {k: canon[k] for k in keys}, "overrides": overrides,
            "version": __version__, "keep_runs": bool(keep_runs),
            "cells": [j["cell"] for j in jobs]}
    return meta, jobs


# ---------------------------------------------------------------------------
# one run (in a worker process)
# ---------------------------------------------------------------------------

def _error_text(e):
    if isinstance(e, SpbsimError):
        return str(e)
    import traceback
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name})" \
        if tb else ""
    return f"{type(e).__name__}: {e}{where}"


#: what one run holds at its peak, measured through the engine
#: (docs/performance.md: peak RSS 2,082 MiB at 256 GB, 7,768 MiB at 1 TB),
#: with a margin: 32 bytes per 4 KiB page of the machine (the allocator's
#: state is 16, the engine's object tables and samples the rest) plus the
#: interpreter
RUN_BYTES_PER_PAGE = 32
RUN_BASE_BYTES = 300 << 20


def run_needs_bytes(memory_bytes):
    """Memory one run of a machine of ``memory_bytes`` needs at its peak (estimate)."""
    return RUN_BASE_BYTES + (int(memory_bytes) >> 12) * RUN_BYTES_PER_PAGE


def worker_memory_available():
    """What a run here may use: the host's available memory, and no more than
    the dask worker's own memory limit (a LocalCluster gives each worker a
    share of the host; its nanny kills a worker near that limit), less what
    this process holds already."""
    import psutil
    avail = psutil.virtual_memory().available
    try:
        from distributed import get_worker
        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):     # not in a dask worker
        limit = None
    if limit:
        avail = min(avail, int(limit) - psutil.Process().memory_info().rss)
    return avail


def check_worker_memory(memory_bytes, available=None):
    """Refuse a cell this worker cannot hold, before it starts (instead of the
    worker dying mid-run): SweepError naming what it needs and what is free."""
    from .mm.geometry import format_size
    if available is None:
        available = worker_memory_available()
    need = run_needs_bytes(memory_bytes)
    if need > available:
        raise SweepError(f"a {format_size(int(memory_bytes))} machine needs about "
                         f"{need / 2**30:.1f} GiB and this worker has {available / 2**30:.1f} GiB "
                         f"available: run it on a worker with more memory")


def _peak_rss_mb():
    """This worker process's peak resident memory so far, MB (Linux: KiB)."""
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_cell(job):
    """Run one cell; never raises for a failed run.  Returns {"cell", "status":
    ok | failed | interrupted, "error", "summary", "run_wall_s", "worker",
    "worker_peak_rss_mb", ...}."""
    import socket

    from . import __version__
    t0 = time.perf_counter()
    out = {"cell": job["cell"], "worker": f"{socket.gethostname()}:{os.getpid()}",
           "spbsim_version": __version__, "run_dir": job.get("run_dir")}
    try:
        if job["version"] != __version__:
            raise SweepError(f"this worker has spbsim {__version__}, the sweep was planned "
                             f"with {job['version']}: install the same spbsim on every worker")
        from .scenario import scenario_from_text
        sc = scenario_from_text(job["scenario_text"], job["label"], job["overrides"])
        check_worker_memory(sc.memory_bytes)
        summary = _simulate(sc, job)
    except Exception as e:     # a bad value or a bug in one cell: recorded, the sweep goes on
        text = _error_text(e)
        for k in job["grid"]:      # the scenario parser calls every override --set
            text = text.replace(f"(from --set {k}=", f"(from --grid {k}=")
        out.update(status="failed", error=text,
                   run_wall_s=round(time.perf_counter() - t0, 3), worker_peak_rss_mb=_peak_rss_mb())
        return out
    out.update(status="interrupted" if summary.get("interrupted") else "ok", error=None,
               summary=summary, run_wall_s=round(time.perf_counter() - t0, 3),
               worker_peak_rss_mb=_peak_rss_mb())
    return out


def _simulate(sc, job):
    from .engine.run import Simulation
    sim = Simulation(sc, policy=job["policy"])
    d = job.get("run_dir")
    if not d:
        return sim.run()
    from . import __version__
    from .engine.rundir import run_into
    params = {"scenario": sc.name, "policy": sim.policy, "seed": sc.seed, "memory": sc.memory,
              "overrides": dict(job["overrides"]), "version": __version__, "sweep": True,
              "cell": job["cell"], "grid": dict(job["grid"])}
    return run_into(sim, d, params, job["scenario_text"])


# ---------------------------------------------------------------------------
# rows and files
# ---------------------------------------------------------------------------

def flatten_summary(summary, prefix=""):
    """Every scalar of a summary as {"a.b.c": value} (lists are left out)."""
    import numpy as np
    out = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_summary(v, name + "."))
        elif isinstance(v, (list, tuple, np.ndarray)):
            continue
        elif isinstance(v, np.generic):
            out[name] = v.item()
        else:
            out[name] = v
    return out


def make_row(job, result):
    """One parquet row: grid values, policy, seed, status, error, ..., summary."""
    row = dict(job["grid"])
    row.update(policy=job["policy"], seed=int(job["seed"]), status=result.get("status", "failed"),
               error=result.get("error"), cell=job["cell"], worker=result.get("worker"),
               spbsim_version=result.get("spbsim_version"), run_wall_s=result.get("run_wall_s"),
               run_dir=result.get("run_dir"), request_checksum=None, wall_s=None,
               worker_peak_rss_mb=result.get("worker_peak_rss_mb"))
    for k, v in flatten_summary(result.get("summary") or {}).items():
        if k in ("policy", "seed"):
            continue                   # the same as the row's own
        if k in job["grid"]:
            k = "summary." + k         # e.g. the machine's memory in bytes beside a memory axis
        row[k] = v
    return row


def _write_parquet_atomic(df, path):
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        df.to_parquet(tmp, engine="pyarrow", index=False, compression="zstd")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_part(out_dir, row):
    """DIR/parts/<cell>.parquet with one row (written to a temporary name, renamed)."""
    import pandas as pd
    d = os.path.join(out_dir, PARTS)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{row['cell']}.parquet")
    _write_parquet_atomic(pd.DataFrame([row]), path)
    return path


def _read_existing(out_dir, cells):
    """{cell: row} of earlier results for these cells: sweep.parquet, then parts."""
    import pandas as pd
    rows = {}
    path = os.path.join(out_dir, SWEEP_PARQUET)
    if os.path.isfile(path):
        try:
            for r in pd.read_parquet(path).to_dict("records"):
                if r.get("cell") in cells:
                    rows[r["cell"]] = _clean(r)
        except Exception:        # a damaged consolidated file: the parts are authoritative
            rows = {}
    pdir = os.path.join(out_dir, PARTS)
    if os.path.isdir(pdir):
        for name in os.listdir(pdir):
            cell, ext = os.path.splitext(name)
            if ext != ".parquet" or cell not in cells or cell in rows:
                continue
            try:
                r = pd.read_parquet(os.path.join(pdir, name)).to_dict("records")[0]
            except Exception:    # a part cut short: the cell runs again
                continue
            rows[cell] = _clean(r)
    return rows


def _clean(r):
    """Drop the NaN/None fill a row got from other rows' columns."""
    out = {}
    for k, v in r.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        out[k] = v.item() if hasattr(v, "item") else v
    return out


# ---------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------

def _security(tls):
    if not tls:
        return None
    from distributed.security import Security
    return Security(tls_ca_file=tls.get("ca_file"), tls_client_cert=tls.get("cert"),
                    tls_client_key=tls.get("key"), require_encryption=True)


def _start_client(workers, scheduler, dashboard, tls):
    from dask.distributed import Client, LocalCluster
    if scheduler:
        try:
            return Client(scheduler, security=_security(tls), timeout="30s"), None
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            hint = (" (a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key, or "
                    "dask's distributed.comm.tls settings)"
                    if scheduler.startswith("tls://") and not tls else "")
            raise SweepError(f"--scheduler {scheduler}: cannot connect: {e}{hint}") from None
    import logging
    import signal
    try:       # the worker processes inherit SIG_IGN: Ctrl-C is the sweep's to handle
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:                    # not the main thread
        old = None
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1",
                               dashboard_address="127.0.0.1:8787" if dashboard else None,
                               # a worker's heartbeat racing the cluster's close logs a
                               # traceback at ERROR; a task's own error reaches the
                               # client through its future
                               silence_logs=logging.CRITICAL)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    return Client(cluster), cluster


def _n(k, what):
    return f"{k} {what}" + ("" if k == 1 else "es" if what.endswith("s") else "s")


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_sweep(scenario, policies=(), seeds=1, grid=(), out_dir="results/sweep", overrides=None,
              workers=None, scheduler=None, keep_runs=False, retry_failed=False, rerun=False,
              dashboard=False, tls=None, progress=True, echo=None):
    """Run every cell not finished before; returns {"total", "ran", "ok",
    "failed", "skipped", "interrupted", "path", "unpaired"}.  ``workers``:
    local worker processes (default: the core count); ``scheduler``: the
    address of a running dask scheduler instead; ``tls``: {"ca_file",
    "cert", "key"} for a tls:// scheduler."""
    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    if scheduler and workers is not None:
        raise SweepError("--workers sizes the local cluster; with --scheduler the cluster's "
                         "own workers run the cells")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise SweepError(f"--workers {workers}: need at least 1")
    out_dir = os.path.abspath(os.fspath(out_dir))
    meta, jobs = plan_sweep(scenario, policies, seeds, grid, overrides, out_dir, keep_runs)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise SweepError(f"{out_dir}: cannot create the sweep directory: {e.strerror}") from None
    grid_keys = [k for k, _ in meta["grid"]]
    cells = {j["cell"] for j in jobs}
    done = {} if rerun else _read_existing(out_dir, cells)
    if retry_failed:
        done = {c: r for c, r in done.items() if r.get("status") == "ok"}
    todo = [j for j in jobs if j["cell"] not in done]
    from .results import _atomic_write, _dump_json
    meta["command"] = {"workers": None if scheduler else workers, "scheduler": scheduler}
    _atomic_write(os.path.join(out_dir, SWEEP_JSON), _dump_json(meta))
    rows = dict(done)
    state = {"last": 0.0}

    def consolidate(force=False):
        now = time.monotonic()
        if not rows or (not force and now - state["last"] < CONSOLIDATE_EVERY_S):
            return
        ordered = [rows[j["cell"]] for j in jobs if j["cell"] in rows]
        _write_parquet_atomic(ordered_frame(ordered, grid_keys),
                              os.path.join(out_dir, SWEEP_PARQUET))
        state["last"] = now

    n_pol, n_seed = len(meta["policies"]), len(meta["seeds"])
    echo(f"spbsim sweep: {meta['scenario']}: {len(jobs) // (n_pol * n_seed)} grid cells x "
         f"{n_pol} policies x {n_seed} seeds = {len(jobs)} runs; {len(jobs) - len(todo)} done "
         f"before, {len(todo)} to run"
         + (f" on {scheduler}" if scheduler else
            f" on {_n(min(workers, len(todo)), 'local worker process')}" if todo else ""))
    stats = {"ran": 0, "ok": 0, "failed": 0, "interrupted": False}
    if todo:
        _run_jobs(todo, rows, stats, out_dir, workers, scheduler, dashboard, tls, progress, echo,
                  consolidate)
    consolidate(force=True)
    unpaired = check_pairing(rows.values(), grid_keys)
    for msg in unpaired:
        echo(f"spbsim sweep: NOT PAIRED: {msg}")
    n_ok = sum(1 for r in rows.values() if r.get("status") == "ok")
    n_failed = sum(1 for r in rows.values() if r.get("status") == "failed")
    return {"total": len(jobs), "ran": stats["ran"], "ok": n_ok, "failed": n_failed,
            "failed_now": stats["failed"], "skipped": len(jobs) - len(todo),
            "interrupted": stats["interrupted"], "unpaired": unpaired,
            "path": os.path.join(out_dir, SWEEP_PARQUET), "dir": out_dir}


def _run_jobs(todo, rows, stats, out_dir, workers, scheduler, dashboard, tls, progress, echo,
              consolidate):
    from dask.distributed import as_completed
    from tqdm import tqdm
    by_cell = {j["cell"]: j for j in todo}
    client, cluster = _start_client(min(workers, len(todo)), scheduler, dashboard, tls)
    bar = None
    futures = []
    try:
        if dashboard and client.dashboard_link:
            echo(f"spbsim sweep: dashboard at {client.dashboard_link}")
        if scheduler and not client.scheduler_info().get("workers"):
            echo(f"spbsim sweep: {scheduler} has no workers yet: waiting for one "
                 f"(start them with: dask worker {scheduler} --nthreads 1)")
            client.wait_for_workers(1)
        bar = tqdm(total=len(todo), unit="run", desc="sweep", file=sys.stderr,
                   disable=None if progress else True, dynamic_ncols=True)
        bar.set_postfix_str("ok 0, failed 0")
        futures = [client.submit(run_cell, j, key=f"spbsim-sweep-{j['cell']}", pure=False)
                   for j in todo]
        cell_of = {f.key: j["cell"] for f, j in zip(futures, todo)}
        for fut in as_completed(futures):
            job = by_cell[cell_of[fut.key]]
            try:
                result = fut.result()
            except Exception as e:     # the worker died, or the task could not run
                result = {"status": "failed", "error": _error_text(e)}
            fut.release()
            if result.get("status") == "interrupted":
                continue                          # in flight when stopped: runs again next time
            row = make_row(job, result)
            write_part(out_dir, row)
            rows[job["cell"]] = _clean(row)
            stats["ran"] += 1
            if row["status"] == "ok":
                stats["ok"] += 1
            else:
                stats["failed"] += 1
                msg = (f"  FAILED: {job['policy']} seed {job['seed']}"
                       + "".join(f" {k}={v}" for k, v in job["grid"].items())
                       + f": {row['error']}")
                if bar.disable:
                    echo(msg)
                else:
                    bar.write(msg, file=sys.stderr)
            bar.set_postfix_str(f"ok {stats['ok']}, failed {stats['failed']}", refresh=False)
            bar.update(1)
            consolidate()
    except KeyboardInterrupt:
        stats["interrupted"] = True
        for f in futures:
            f.cancel()
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if cluster is not None:
            cluster.close()


def check_pairing(rows, grid_keys):
    """Messages for (grid cell, seed) groups whose finished runs saw different
    request streams (none expected: the stream depends on scenario and seed)."""
    groups = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        k = tuple(str(r.get(g)) for g in grid_keys) + (r.get("seed"),)
        groups.setdefault(k, {})[r.get("policy")] = r.get("request_checksum")
    out = []
    for k, got in groups.items():
        if len(set(got.values())) > 1:
            where = " ".join(f"{g}={v}" for g, v in zip(grid_keys, k[:-1]))
            out.append(f"{where} seed {k[-1]}: " + ", ".join(f"{p} {c}" for p, c in got.items()))
    return out
