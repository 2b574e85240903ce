"""The allocator benchmark: a fixed seeded stream of alloc/free operations.

Stream: 70 % order 0, the rest orders 1-9 with halving probability;
80 % movable (GFP_HIGHUSER_MOVABLE), 15 % unmovable (GFP_KERNEL), 5 %
reclaimable (GFP_KERNEL|__GFP_RECLAIMABLE); random cpu; occupancy held near
90 % of managed pages (allocate below the target, free a random live block
above it).  The machine is first filled to the target, then the timed
operations run.  Each size runs in a fresh process so peak RSS is its own.
``--engine``: the default scenario at the same size, through the whole
engine, for the events/s of ``spbsim run`` beside the allocator's.
"""
import json
import resource
import subprocess
import sys
import time

import numpy as np

from .mm.jit import njit, njit_inline
from .mm.page_alloc import alloc_pages
from .mm.page_free import free_pages
from .mm.state import ZS_MANAGED

__all__ = ["run_one", "run_engine", "main", "bench_stream"]

#: the fill gives up after this many failed requests: a machine that cannot
#: reach the target (1 GB: the watermarks and per-cpu lists hold more than
#: a tenth) stops there instead of trying a million times through the slow path
FILL_MAX_FAILURES = 10_000

#: the scenario ``--engine`` runs (spbsim run's default)
ENGINE_SCENARIO = "devvm-256g"

_GFP_MOVABLE = 0x1000CCA      # GFP_HIGHUSER_MOVABLE (0x100cca)
_GFP_KERNEL = 0xCC0
_GFP_RECLAIMABLE = 0x10


@njit_inline
def _rand(rng):
    """xorshift64* (Vigna): a fast deterministic generator; returns [0, 1)."""
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    return ((x * np.uint64(2685821657736338717)) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit_inline
def _sample_order(rng, cum):
    if _rand(rng) < 0.7:
        return 0
    u = _rand(rng)
    for k in range(cum.shape[0]):
        if u < cum[k]:
            return k + 1
    return cum.shape[0]


@njit_inline
def _sample_gfp(rng):
    u = _rand(rng)
    if u < 0.80:
        return 0x100CCA
    if u < 0.95:
        return _GFP_KERNEL
    return _GFP_KERNEL | _GFP_RECLAIMABLE


@njit
def bench_stream(m, n_ops, rng, target, ncpu, live_pfn, live_order, state, cum):
    """Run ``n_ops`` operations (n_ops < 0: fill until ``target`` pages are
    used, or FILL_MAX_FAILURES requests have failed).

    state = [nlive, used_pages, allocs, frees, failures]; live_* hold the
    blocks; rng = the generator's uint64 state (see seed_rng).
    """
    nlive = state[0]
    used = state[1]
    i = 0
    while True:
        if n_ops >= 0:
            if i >= n_ops:
                break
        elif used >= target:
            break
        i += 1
        cpu = int(_rand(rng) * ncpu)
        if used < target or nlive == 0:
            order = _sample_order(rng, cum)
            gfp = _sample_gfp(rng)
            pfn = alloc_pages(m, order, gfp, cpu, 3)
            state[2] += 1
            if pfn < 0:
                state[4] += 1
                if n_ops < 0 and state[4] > FILL_MAX_FAILURES:
                    break
                continue
            live_pfn[nlive] = pfn
            live_order[nlive] = order
            nlive += 1
            used += 1 << order
        else:
            j = int(_rand(rng) * nlive)
            pfn = live_pfn[j]
            order = live_order[j]
            nlive -= 1
            live_pfn[j] = live_pfn[nlive]
            live_order[j] = live_order[nlive]
            free_pages(m, pfn, order, cpu)
            state[3] += 1
            used -= 1 << order
    state[0] = nlive
    state[1] = used
    return i


def seed_rng(seed):
    """Generator state for a seed (splitmix64 of the seed; never zero)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & (2**64 - 1)
    x ^= x >> 31
    return np.array([x or 1], np.uint64)


def _order_cdf():
    w = np.array([2.0 ** -(k - 1) for k in range(1, 10)])
    return np.cumsum(w / w.sum())


def run_one(memory="4G", n_ops=10_000_000, seed=1, cpus=4, policy="stock", occupancy=0.9,
            check=False):
    """Build, fill and run one machine; return a dict of measurements."""
    from .machine import Machine
    t0 = time.perf_counter()
    from .policy import Policy
    mach = Machine(memory=memory, cpus=cpus, seed=seed, **Policy.parse(policy).machine_kwargs())
    t_build = time.perf_counter() - t0
    m = mach.mem
    managed = int(m.zstat[:, ZS_MANAGED].sum())
    target = int(managed * occupancy)
    cap = target + 16
    live_pfn = np.empty(cap, np.int64)
    live_order = np.empty(cap, np.int8)
    state = np.zeros(5, np.int64)
    cum = _order_cdf()
    t1 = time.perf_counter()
    fill_ops = bench_stream(m, -1, seed_rng(seed), target, cpus, live_pfn, live_order, state, cum)
    t_fill = time.perf_counter() - t1
    state[2:] = 0
    t2 = time.perf_counter()
    bench_stream(m, n_ops, seed_rng(seed + 1), target, cpus, live_pfn, live_order, state, cum)
    t_run = time.perf_counter() - t2
    if check:
        mach.check()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "memory": memory, "policy": policy, "cpus": cpus, "ops": n_ops,
        "fill_ops": int(fill_ops), "build_s": round(t_build, 3), "fill_s": round(t_fill, 3),
        "run_s": round(t_run, 3), "events_per_s": round(n_ops / t_run) if t_run > 0 else None,
        "total_s": round(t_build + t_fill + t_run, 3),
        "alloc_failures": int(state[4]), "allocs": int(state[2]), "frees": int(state[3]),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "state_bytes_per_page": round(mach.state_bytes() / mach.geometry.nr_pfns, 2),
        "freelists_visited_per_alloc": round(mach.sim_counters()["sim_freelists_visited"]
                                             / max(1, mach.sim_counters()["sim_alloc_requests"]), 2),
        "spbs_visited_per_walk": _spb_visits(mach),
    }


def _timed(fn, acc, key):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[key] += time.perf_counter() - t0
    return wrapper


def run_engine(memory="256G", policy="stock", seed=1, duration="600s"):
    """The default scenario at ``memory`` through the whole engine (request
    generation, the compiled event loop, 1 GB attempts, sampling with the
    pageblock snapshots, as ``spbsim run`` does, without writing files).
    Events are the allocator's (sim_alloc_requests + sim_free_requests), as
    in run_one; the wall time is the simulation loop's."""
    from .engine.rundir import PageblockRecorder, expected_samples
    from .engine.run import Simulation
    from .scenario import load_scenario
    sc = load_scenario(ENGINE_SCENARIO, {"scenario.memory": memory, "scenario.seed": str(seed),
                                         "scenario.duration": duration,
                                         "scenario.policy": policy})
    t0 = time.perf_counter()
    sim = Simulation(sc)
    t_build = time.perf_counter() - t0
    # rows are built and the pageblock snapshots kept, as in a run; nothing is written
    sim.writer = PageblockRecorder(None, sim.machine, expected_samples(sc))
    acc = {"requests": 0.0, "sampling": 0.0, "hugetlb": 0.0}
    sim.stream.tick = _timed(sim.stream.tick, acc, "requests")
    sim._sample = _timed(sim._sample, acc, "sampling")
    sim._hugetlb = _timed(sim._hugetlb, acc, "hugetlb")
    summary = sim.run()
    wall = summary["wall_s"]
    events = summary["sim"]["sim_alloc_requests"] + summary["sim"]["sim_free_requests"]
    shares = {k: round(v / wall, 4) for k, v in acc.items()}
    shares["event_loop"] = round(1 - sum(shares.values()), 4)
    return {"memory": memory, "policy": policy, "scenario": sc.name, "duration_s": sc.duration_s,
            "events": int(events), "wall_s": wall, "build_s": round(t_build, 3),
            "events_per_s": round(events / wall) if wall > 0 else None, "wall_shares": shares,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _spb_visits(mach):
    """SPBs visited per __rmqueue_smallest under the SPB allocator (None for stock)."""
    if not mach.spb_enabled:
        return None
    from .mm.spb.params import SPB_STAT
    st = mach.mem.spb.stat.sum(axis=0)
    walks = int(st[SPB_STAT["spb_alloc_walks"]])
    return round(int(st[SPB_STAT["spb_spbs_visited"]]) / walks, 2) if walks else None


def _warm():
    from .machine import Machine
    m = Machine("1G", cpus=1, early_unmovable=0)
    st = np.zeros(5, np.int64)
    bench_stream(m.mem, 1000, seed_rng(0), 1000, 1, np.empty(2000, np.int64), np.empty(2000, np.int8), st,
                 _order_cdf())


def _in_process(args, what):
    proc = subprocess.run([sys.executable, "-m", "spbsim.bench", *map(str, args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(sizes=("4G", "256G"), n_ops=10_000_000, seed=1, cpus=4, policy="stock", echo=print,
         engine=False, engine_duration="600s"):
    """Run each size in its own process; return the list of result dicts.
    ``engine``: also run the default scenario at each size (run_engine, in
    its own process) and print its events/s against the allocator's."""
    results = []
    for size in sizes:
        r = _in_process([size, n_ops, seed, cpus, policy], f"benchmark at {size}")
        results.append(r)
        echo(f"{r['memory']:>6} {r['policy']:<8} {r['events_per_s'] / 1e6:6.2f} M events/s  "
             f"build {r['build_s']:.2f}s fill {r['fill_s']:.2f}s ({r['fill_ops']} allocs) "
             f"run {r['run_s']:.2f}s total {r['total_s']:.2f}s  peak RSS {r['peak_rss_mb']:.0f} MB  "
             f"{r['state_bytes_per_page']} B/page  failures {r['alloc_failures']}  "
             f"free lists/alloc {r['freelists_visited_per_alloc']}"
             + (f"  SPBs/walk {r['spbs_visited_per_walk']}" if r.get('spbs_visited_per_walk') else ""))
        if engine:
            e = _in_process(["--engine", size, policy, seed, engine_duration], f"engine at {size}")
            r["engine"] = e
            sh = e["wall_shares"]
            echo(f"{e['memory']:>6} {e['policy']:<8} {e['events_per_s'] / 1e6:6.2f} M events/s "
                 f"through the engine = {e['events_per_s'] / r['events_per_s']:.2f}x the allocator "
                 f"({e['scenario']}, {e['duration_s']:g} s simulated, {e['events'] / 1e6:.1f} M "
                 f"events in {e['wall_s']:.1f} s: event loop {100 * sh['event_loop']:.0f} %, "
                 f"request generation {100 * sh['requests']:.0f} %, sampling "
                 f"{100 * sh['sampling']:.0f} %, 1 GB attempts {100 * sh['hugetlb']:.0f} %; "
                 f"peak RSS {e['peak_rss_mb']:.0f} MB)")
    return results


if __name__ == "__main__":
    if sys.argv[1] == "--engine":
        size, policy, seed, duration = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        print(json.dumps(run_engine(size, policy, seed, duration)))
        sys.exit(0)
    _warm()
    size, n, seed, cpus, policy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    print(json.dumps(run_one(size, n, seed, cpus, policy)))
