"""The built-in default job: a seeded mixed allocation stream on a machine,
with periodic DEBUG_VM checks if asked, written to a results directory.

This is the core's own workload (the benchmark's mix); the scenario engine
with time, reclaim and workload sources builds on it.
"""
import json
import os
import time

import numpy as np

from .bench import _order_cdf, bench_stream, seed_rng
from .mm.state import ZS_MANAGED
from .observe.census import hugepage_availability, pageblock_census

__all__ = ["run_mixed", "write_results"]


def run_mixed(machine, n_ops, seed=1, occupancy=0.9, batches=50, check=False, progress=None):
    """Fill to ``occupancy`` and run ``n_ops`` alloc/free operations in batches.

    ``progress(done, total)`` is called after each batch.  Returns a dict of
    counts; KeyboardInterrupt stops early, with the counts so far.
    """
    m = machine.mem
    managed = int(m.zstat[:, ZS_MANAGED].sum())
    target = int(managed * occupancy)
    live_pfn = np.empty(target + 16, np.int64)
    live_order = np.empty(target + 16, np.int8)
    state = np.zeros(5, np.int64)
    cum = _order_cdf()
    rng = seed_rng(seed)
    t0 = time.perf_counter()
    fill = bench_stream(m, -1, rng, target, machine.cpus, live_pfn, live_order, state, cum)
    done = 0
    interrupted = False
    per = max(1, n_ops // batches)
    try:
        while done < n_ops:
            k = min(per, n_ops - done)
            bench_stream(m, k, rng, target, machine.cpus, live_pfn, live_order, state, cum)
            done += k
            if check:
                machine.check()
            if progress:
                progress(done, n_ops)
    except KeyboardInterrupt:
        interrupted = True
    return {"fill_allocs": int(fill), "ops": done, "interrupted": interrupted,
            "seconds": round(time.perf_counter() - t0, 3),
            "alloc_failures": int(state[4]), "live_blocks": int(state[0]),
            "used_pages": int(state[1]), "target_pages": target}


def summarize(machine, run_info=None):
    s = machine.summary()
    s["census"] = pageblock_census(machine.mem)
    s["hugepages"] = hugepage_availability(machine.mem)
    if run_info:
        s["run"] = run_info
    return s


PROC_FILES = ("buddyinfo", "pagetypeinfo", "vmstat", "zoneinfo", "unusable_index",
              "extfrag_index")


def write_results(machine, out_dir, summary, params):
    """Write summary.json, params.json and the kernel-format snapshots.

    Each file is written to a temporary name and renamed, so an interrupted
    run never leaves a half-written file.
    """
    os.makedirs(out_dir, exist_ok=True)
    proc_dir = os.path.join(out_dir, "proc")
    os.makedirs(proc_dir, exist_ok=True)

    def put(path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    for name in PROC_FILES:
        put(os.path.join(proc_dir, name), getattr(machine, name)())
    put(os.path.join(out_dir, "params.json"), json.dumps(params, indent=1, sort_keys=True) + "\n")
    put(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=1, sort_keys=True) + "\n")
