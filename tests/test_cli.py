"""The command line as a user meets it: the default job, results, bad input."""
import json
import os
import subprocess
import sys

import pytest



def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spbsim.cli", *args], capture_output=True,
                          text=True, timeout=1800)   # the first call may compile (minutes)


def test_run_writes_results_and_summary(tmp_path):
    out = tmp_path / "res"
    r = run_cli("churn", "--memory", "2G", "--ops", "200000", "--out", str(out), "--check",
                "--trace", "100")
    assert r.returncode == 0, r.stderr
    assert "1 GB pages" in r.stdout and "Node 0, zone" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["run"]["ops"] == 200000
    for k in ("1g_free", "1g_obtainable", "2m_free", "2m_obtainable"):
        assert k in s["hugepages"]
    for name in ("buddyinfo", "pagetypeinfo", "vmstat", "zoneinfo", "unusable_index",
                 "extfrag_index"):
        assert (out / "proc" / name).read_text().strip()
    assert len((out / "trace.txt").read_text().splitlines()) == 100
    assert json.loads((out / "params.json").read_text())["memory"] == "2G"


def test_same_seed_same_results(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert run_cli("churn", "--memory", "1G", "--ops", "50000", "--out", str(d)).returncode == 0
    for name in ("buddyinfo", "pagetypeinfo", "vmstat"):
        assert (a / "proc" / name).read_bytes() == (b / "proc" / name).read_bytes()


def test_run_a_scenario_writes_a_loadable_results_directory(tmp_path):
    from spbsim.results import load
    out = tmp_path / "kb"
    r = run_cli("run", "kbuild", "--duration", "20s", "--out", str(out), "--set",
                "scenario.sample_interval=2s")
    assert r.returncode == 0, r.stderr
    assert "1 GB pages" in r.stdout and "reclaim" in r.stdout
    res = load(out)
    assert res.complete and res.summary["scenario"] == "kbuild"
    ts = res.timeseries
    assert len(ts) == 11 and ts["t_s"].iloc[-1] == 20.0
    assert (ts["free_pages"] > 0).all()
    assert "Node 0, zone" in res.proc["buddyinfo"]
    # pageblock snapshots for the map animation, one per sample, the last = the end state
    from spbsim.report.snapshots import load_pageblock_series, load_pageblocks
    ser = load_pageblock_series(out)
    assert ser["t_s"].tolist() == ts["t_s"].tolist()
    assert (ser["pb_flags"][-1] == load_pageblocks(out / "pageblocks.npz")["pb_flags"]).all()


@pytest.mark.parametrize("args, msg", [
    (["run", "--memory", "3Q"], "scenario.memory: expected a size like '8G'"),
    (["run", "--memory", "8T"], "out of range"),
    (["run", "--policy", "spb:v9"], "policy"),
    (["run", "kbuild", "--set", "spb.hint=maybe"], "spb.hint"),
    (["run", "kbuild", "--set", "spb.hint=true"], "need an spb policy"),
    (["run", "nosuchscenario"], "nosuchscenario"),
    (["run", "kbuild", "--set", "source.pagecache.rate=abc"], "source"),
    (["replay", "/nonexistent/trace"], "no such file"),
    (["churn", "--memory", "3Q"], "invalid memory size '3Q'"),
    (["churn", "--occupancy", "2"], "--occupancy"),
    (["churn", "--cpus", "0"], "cpus"),
    (["bench", "--sizes", "4Q"], "invalid --sizes entry"),
    (["bench", "--engine", "--engine-duration", "soon"], "--engine-duration: expected a time"),
    (["validate", ".", "--compaction-cost", "5x,1"], "--compaction-cost '5x,1': expected US,NS"),
    (["validate", ".", "--compaction-cost", "-1,1"], "each value 0 to 1000000"),
])
def test_bad_input_is_one_clear_line(args, msg):
    r = run_cli(*args)
    assert r.returncode == 2
    assert msg in r.stderr
    assert "Traceback" not in r.stderr


def test_bench_engine_prints_the_engine_beside_the_allocator():
    """spbsim bench --engine: the default scenario's events/s through the
    whole engine, as a multiple of the allocator benchmark's at that size,
    and the shares of its wall time."""
    import re
    from spbsim.bench import run_engine
    r = run_cli("bench", "--sizes", "1G", "--ops", "20000", "--engine", "--engine-duration", "2s")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "through the engine" in ln)
    assert re.search(r"M events/s through the engine = [0-9.]+x the allocator \(devvm-256g, 2 s "
                     r"simulated, .* event loop \d+ %, request generation \d+ %, sampling \d+ %", line)
    e = run_engine("1G", "stock", 1, "2s")
    assert e["events"] > 0 and e["events_per_s"] > 0
    # the timed parts never exceed the loop's wall time (event_loop is the rest)
    assert set(e["wall_shares"]) == {"event_loop", "requests", "sampling", "hugetlb"}
    assert all(0 <= v <= 1 for v in e["wall_shares"].values())


def test_bad_policy_fails_before_the_first_compile_banner(tmp_path):
    """With a cold numba cache, a bad policy is reported without announcing
    minutes of compilation first (the banner comes after validation)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "spbsim.cli", "run", "spb-stuck", "--policy",
                        "spb:v9"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 2 and "policy 'spb:v9'" in r.stderr
    assert "compiling" not in r.stderr


def test_malformed_trace_line_is_named_without_traceback(tmp_path):
    bad = tmp_path / "trace.txt"
    bad.write_text(" init-182 [001] d..3.    10.499977: mm_page_alloc: page=00000000f2c1a9b0 "
                   "pfn=0xZZ order=0 migratetype=1 gfp_flags=GFP_KERNEL\n")
    r = run_cli("replay", str(bad), "--mode", "what-if")
    assert r.returncode == 2
    assert "trace.txt:1: mm_page_alloc: field 'pfn'" in r.stderr
    assert "Traceback" not in r.stderr
