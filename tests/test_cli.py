"""The command line as a user meets it: the default job, results, bad input."""
import json
import subprocess
import sys

import pytest

from spbsim.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spbsim.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_run_writes_results_and_summary(tmp_path):
    out = tmp_path / "res"
    r = run_cli("run", "--memory", "2G", "--ops", "200000", "--out", str(out), "--check",
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
        assert run_cli("run", "--memory", "1G", "--ops", "50000", "--out", str(d)).returncode == 0
    for name in ("buddyinfo", "pagetypeinfo", "vmstat"):
        assert (a / "proc" / name).read_bytes() == (b / "proc" / name).read_bytes()


@pytest.mark.parametrize("args, msg", [
    (["run", "--memory", "3Q"], "invalid memory size '3Q'"),
    (["run", "--memory", "8T"], "out of range"),
    (["run", "--policy", "spb:v1"], "--policy"),
    (["run", "--occupancy", "2"], "--occupancy"),
    (["run", "--cpus", "0"], "cpus"),
    (["bench", "--sizes", "4Q"], "invalid --sizes entry"),
])
def test_bad_input_is_one_clear_line(args, msg):
    r = run_cli(*args)
    assert r.returncode == 2
    assert msg in r.stderr
    assert "Traceback" not in r.stderr
