"""spbsim sweep: a small grid on a local dask cluster end to end, a failing
cell, pairing, resume, load_sweep, the report of a sweep directory, bad
command lines, and a real `dask scheduler` + `dask worker` on 127.0.0.1."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from spbsim.cli import main
from spbsim.results import ResultsError, load_sweep
from spbsim.sweep import parse_grid, plan_sweep, run_sweep, split_values

#: 1 GB machine, 1 s: page cache per memory size (so a memory axis changes the
#: stream), the rest absolute
SCENARIO = """
[scenario]
name = "tiny-sweep"
memory = "1G"
cpus = 2
duration = "1s"
seed = 1

[[source]]
name = "pagecache"
kind = "pagecache"
rate = "200MB/s per 1G"
orders = {0 = 0.8, 2 = 0.2}
lifetime = "inf"
[[source]]
name = "anon"
kind = "anon"
rate = 20000
lifetime = {dist = "exp", mean = "1s"}
[[source]]
name = "kmalloc"
kind = "unmovable"
rate = 5000
orders = {0 = 0.7, 1 = 0.2, 3 = 0.1}
lifetime = {dist = "lognormal", median = "1s", sigma = 1.5}
"""
POLICIES = ["stock", "stock:defrag"]
GRID = ["memory=1G,1536M,lots"]


@pytest.fixture(scope="module")
def scen(tmp_path_factory):
    p = tmp_path_factory.mktemp("sweep") / "tiny.toml"
    p.write_text(SCENARIO)
    return str(p)


@pytest.fixture(scope="module")
def swept(scen, tmp_path_factory):
    """The command line's sweep: 3 memory sizes (one bad) x 2 policies x 2 seeds
    on a local cluster of 2 worker processes; the bad cells fail (exit 1)."""
    out = str(tmp_path_factory.mktemp("sweep") / "out")
    args = ["sweep", scen, "--seeds", "2", "--workers", "2", "--out", out]
    for p in POLICIES:
        args += ["--policy", p]
    for g in GRID:
        args += ["--grid", g]
    with pytest.raises(SystemExit) as ei:
        main(args)
    assert ei.value.code == 1          # some runs failed
    return out, args


def test_sweep_end_to_end(swept):
    out, _ = swept
    df = load_sweep(out)
    assert len(df) == 12
    assert list(df.columns[:5]) == ["memory", "policy", "seed", "status", "error"]
    ok = df[df.status == "ok"]
    assert len(ok) == 8
    assert set(ok.memory) == {"1G", "1536M"} and set(ok.policy) == set(POLICIES)
    assert sorted(set(ok.seed)) == [1, 2]
    for col in ("hugepages.1g_obtainable", "hugepages.2m_obtainable", "vmstat.pgmigrate_success",
                "sim.sim_alloc_requests", "sources.anon.fails", "requests", "wall_s",
                "run_wall_s", "request_checksum", "worker", "cell", "summary.memory",
                "worker_peak_rss_mb"):
        assert col in df.columns, col
        assert ok[col].notna().all(), col
    assert (ok["summary.memory"] == ok.memory.map({"1G": 1 << 30, "1536M": 1536 << 20})).all()
    assert (ok.requests > 10_000).all()
    assert (ok.run_wall_s >= ok.wall_s).all()
    assert (ok.worker_peak_rss_mb > 50).all() and (ok.worker_peak_rss_mb < 8000).all()
    # one part per run, the consolidated file and the plan
    assert len(os.listdir(os.path.join(out, "parts"))) == 12
    meta = json.load(open(os.path.join(out, "sweep.json")))
    assert meta["policies"] == POLICIES and meta["seeds"] == [1, 2]
    assert meta["grid"] == [["memory", ["1G", "1536M", "lots"]]]
    assert df.attrs["sweep"]["cells"] == list(df.cell)
    assert not os.path.exists(os.path.join(out, "runs"))      # no --keep-runs
    # run on worker processes, not in this one
    assert not any(w.endswith(f":{os.getpid()}") for w in ok.worker)


def test_a_cell_too_big_for_its_worker_fails_before_it_starts():
    """A worker refuses a machine it cannot hold, naming what it needs."""
    from spbsim.sweep import SweepError, check_worker_memory, run_needs_bytes
    assert 8.8e9 < run_needs_bytes(1 << 40) < 9.2e9          # 1 TB (measured 8.1 GB)
    check_worker_memory(16 << 30, available=2 << 30)
    with pytest.raises(SweepError, match=r"a 4T machine needs about 32\.3 GiB and this "
                                         r"worker has 16\.0 GiB available"):
        check_worker_memory(4 << 40, available=16 << 30)



def test_worker_memory_is_the_dask_workers_share(monkeypatch):
    """In a dask worker the limit is the worker's own memory limit (a
    LocalCluster's share of the host), not the whole host's free memory."""
    import types

    import distributed
    from spbsim.sweep import worker_memory_available
    host = worker_memory_available()                  # not in a worker: the host's
    mm = types.SimpleNamespace(memory_limit=2 << 30)
    monkeypatch.setattr(distributed, "get_worker",
                        lambda: types.SimpleNamespace(memory_manager=mm))
    assert worker_memory_available() < min(host, 2 << 30)


def test_failing_cell_recorded(swept):
    df = load_sweep(swept[0])
    bad = df[df.memory == "lots"]
    assert len(bad) == 4 and (bad.status == "failed").all()
    for e in bad.error:
        assert "scenario.memory" in e and "'lots'" in e, e
    assert bad["hugepages.1g_obtainable"].isna().all()
    assert (df[df.memory != "lots"].status == "ok").all()


def test_paired_checksums(swept):
    ok = load_sweep(swept[0]).query("status == 'ok'")
    per = ok.groupby(["memory", "seed"])["request_checksum"].nunique()
    assert (per == 1).all()                      # every policy saw the same stream
    by = ok.groupby(["memory", "seed"])["request_checksum"].first()
    assert by[("1G", 1)] != by[("1G", 2)]        # seeds differ
    assert by[("1G", 1)] != by[("1536M", 1)]     # the page cache rate scales with memory
    assert len(set(ok.cell)) == 8


def test_resume_skips_finished_cells(swept, capsys):
    out, args = swept
    parts = os.path.join(out, "parts")
    mtimes = {n: os.stat(os.path.join(parts, n)).st_mtime_ns for n in os.listdir(parts)}
    os.remove(os.path.join(out, "sweep.parquet"))     # as if killed before consolidating
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as ei:
        main(args)
    assert ei.value.code == 1                          # the failed cells are still failed
    err = capsys.readouterr().err
    assert "12 done before, 0 to run" in err and "0 run now" in err, err
    assert time.perf_counter() - t0 < 20               # no cluster was started
    assert {n: os.stat(os.path.join(parts, n)).st_mtime_ns for n in os.listdir(parts)} == mtimes
    assert len(load_sweep(out)) == 12
    # --retry-failed runs only the failed cells again (they fail again)
    with pytest.raises(SystemExit):
        main(args + ["--retry-failed", "--workers", "1"])
    err = capsys.readouterr().err
    assert "8 done before, 4 to run" in err and "4 run now" in err, err



def test_changed_grid_reuses_finished_cells(scen, swept, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(swept[0], out)
    r = run_sweep(scen, POLICIES, 2, parse_grid(["memory=1536M,1G"]), out, workers=1,
                  progress=False, echo=lambda s: None)
    assert (r["ran"], r["skipped"], r["ok"], r["failed"]) == (0, 8, 8, 0)
    df = load_sweep(out)                        # sweep.parquet holds this command's cells
    assert len(df) == 8 and list(df.memory[:4]) == ["1536M"] * 4
    assert len(os.listdir(os.path.join(out, "parts"))) == 12


def test_ctrl_c_keeps_finished_runs(scen, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it): exit
    130 without a traceback, the finished runs' parts kept, no process left."""
    import signal
    out = tmp_path / "out"
    # 1000 one-second runs (tens of ms each once compiled): far more than can
    # finish between the first part file and the signal, also when this test
    # process waits seconds for a core (400 all finished once on a host running
    # two test suites)
    cmd = [sys.executable, "-m", "spbsim.cli", "sweep", scen, "--seeds", "1000", "--workers", "1",
           "--out", str(out)]
    # SIGINT handled as in a terminal, also when this test runs with SIGINT ignored (nohup, &)
    p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def parts():
        return sorted(out.glob("parts/*.parquet"))
    try:
        t0 = time.monotonic()
        while not parts():
            assert p.poll() is None and time.monotonic() - t0 < 120, p.stdout.read()
            time.sleep(0.2)
        os.killpg(p.pid, signal.SIGINT)
        # the cluster closes once its worker is between tasks: one that is
        # compiling a function a later seed needs first (a cold cache, the
        # other test processes compiling beside it) finishes that compile
        text, _ = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, text
    assert "interrupted: the same command resumes" in text and "Traceback" not in text, text
    done = len(parts())
    assert 1 <= done < 1000 and len(load_sweep(out)) == done
    t0 = time.monotonic()
    while True:
        left = subprocess.run(["pgrep", "-a", "-s", str(p.pid)], capture_output=True,
                              text=True).stdout
        if not left.strip() or time.monotonic() - t0 > 10:
            break
        time.sleep(0.2)
    assert not left.strip(), f"processes left in the sweep's session: {left}"


def test_report_of_a_sweep(swept, tmp_path):
    from spbsim.report.html import write_report
    d = tmp_path / "copy"
    shutil.copytree(swept[0], d)
    before = {p: os.stat(os.path.join(d, p)).st_mtime_ns for p in ("sweep.json", "sweep.parquet")}
    html = open(write_report(str(d))).read()
    md = (d / "sweep.md").read_text()
    assert "## memory=1G" in md and "## memory=1536M" in md and "## memory=lots" in md
    assert "| metric | stock | stock:defrag |" in md
    assert "Request checksums (paired)" in md and "## Failed runs" in md
    for name in ("sweep_memory.png", "sweep_delta_memory.png"):
        with open(d / "figures" / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "Metrics against the grid axes" in html and "Failed runs" in html
    assert "data:image/png;base64," in html
    assert {p: os.stat(os.path.join(d, p)).st_mtime_ns for p in before} == before


def test_bad_command_lines_exit_2(scen, tmp_path, capsys):
    out = str(tmp_path / "o")
    cases = [(["--grid", "memory"], "expected KEY=V1,V2"),
             (["--grid", "memory=1G,,2G"], "empty value"),
             (["--grid", "nosuch=1,2"], "unknown key 'nosuch'"),
             (["--grid", "source.nope.rate=1,2"], "no source named 'nope'"),
             (["--grid", "spb.pas_2d=true,false"], "did you mean 'spb.pass_2d'"),
             (["--grid", "seed=1,2"], "use --seeds"),
             (["--grid", "memory=1G", "--grid", "scenario.memory=2G"], "the same key"),
             (["--grid", "memory=1G", "--set", "memory=2G"], "also given with --set"),
             (["--policy", "nosuch"], "policy 'nosuch': unknown"),
             (["--set", "memory=lots"], "scenario.memory"),
             (["--workers", "0"], "--workers 0"),
             (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sizes")]
    for extra, what in cases:
        with pytest.raises(SystemExit) as ei:
            main(["sweep", scen, "--out", out] + extra)
        err = capsys.readouterr().err
        assert ei.value.code == 2, (extra, err)
        assert what in err and "Traceback" not in err, (extra, err)
        assert len(err.strip().splitlines()) == 1, (extra, err)
    assert not os.path.exists(out)


def test_grid_values_and_cell_keys(scen):
    assert split_values('1G,2G') == ["1G", "2G"]
    assert split_values('{dist="exp", mean="3s"},{dist="exp", mean="9s"}') == \
        ['{dist="exp", mean="3s"}', '{dist="exp", mean="9s"}']
    meta, jobs = plan_sweep(scen, POLICIES, 2, parse_grid(["memory=1G,2G", "cpus=2,4"]))
    assert len(jobs) == 16 and len({j["cell"] for j in jobs}) == 16
    again = plan_sweep(scen, POLICIES, 2, parse_grid(["scenario.memory=1G,2G", "cpus=2,4"]))[1]
    assert [j["cell"] for j in again] == [j["cell"] for j in jobs]    # same key path, same cell
    other = plan_sweep(scen, POLICIES, 2, parse_grid(["memory=1G,2G", "cpus=2,4"]),
                       {"duration": "3s"})[1]
    assert not {j["cell"] for j in other} & {j["cell"] for j in jobs}


def test_load_sweep_errors(tmp_path):
    with pytest.raises(ResultsError, match="no such sweep directory"):
        load_sweep(tmp_path / "nothing")
    with pytest.raises(ResultsError, match="missing sweep.json"):
        load_sweep(tmp_path)


def test_local_cluster_listens_on_loopback():
    from spbsim.sweep import _start_client
    client, cluster = _start_client(1, None, False, None)
    try:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = client.scheduler_info()["workers"]
        assert workers and all(a.startswith("tcp://127.0.0.1:") for a in workers)
        # the scheduler's HTTP endpoints (the dashboard's port) are loopback too
        socks = getattr(cluster.scheduler.http_server, "_sockets", {}).values()
        assert all(s.getsockname()[0] == "127.0.0.1" for s in socks)
    finally:
        client.close()
        cluster.close()


def _wait_for(path, proc, timeout):
    t0 = time.monotonic()
    while not os.path.exists(path):
        assert proc.poll() is None, "the dask process exited"
        assert time.monotonic() - t0 < timeout, f"no {path} after {timeout} s"
        time.sleep(0.2)


class DaskCluster:
    """`dask scheduler` and one `dask worker` as subprocesses on 127.0.0.1
    (``extra``: options both take, e.g. TLS certificates); stopped on exit."""

    def __init__(self, tmp_path, protocol="tcp", extra=()):
        self.tmp_path, self.protocol, self.extra = tmp_path, protocol, list(extra)
        self.procs = []

    def __enter__(self):
        sfile = str(self.tmp_path / "scheduler.json")
        dask = [sys.executable, "-m", "dask"]
        self.log = open(self.tmp_path / "dask.log", "w")
        try:
            self.procs.append(subprocess.Popen(
                dask + ["scheduler", "--protocol", self.protocol, "--host", "127.0.0.1",
                        "--port", "0", "--no-dashboard", "--scheduler-file", sfile] + self.extra,
                stdout=self.log, stderr=subprocess.STDOUT))
            _wait_for(sfile, self.procs[0], 60)
            self.address = json.load(open(sfile))["address"]
            assert self.address.startswith(f"{self.protocol}://127.0.0.1:")
            self.procs.append(subprocess.Popen(
                dask + ["worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                        "--nworkers", "1", "--no-dashboard"] + self.extra,
                stdout=self.log, stderr=subprocess.STDOUT))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()


def test_dask_scheduler_and_worker(scen, tmp_path):
    """The cluster path: `dask scheduler` and one `dask worker` on 127.0.0.1; the
    sweep waits for the worker to connect; --keep-runs keeps results directories."""
    from spbsim.results import load
    with DaskCluster(tmp_path) as cl:
        out = str(tmp_path / "out")
        r = run_sweep(scen, POLICIES, 1, [], out, {"duration": "1s"}, scheduler=cl.address,
                      keep_runs=True, progress=False, echo=lambda s: None)
        assert (r["ran"], r["ok"], r["failed"], r["unpaired"]) == (2, 2, 0, [])
        df = load_sweep(out)
        assert df.request_checksum.nunique() == 1
        assert df.worker.nunique() == 1                            # the one worker
        assert not df.worker[0].endswith(f":{os.getpid()}")
        assert df.attrs["sweep"]["command"]["scheduler"] == cl.address
        for row in df.itertuples():
            assert row.run_dir == os.path.join(out, "runs", row.cell)
            res = load(row.run_dir)
            assert res.complete and res.summary["request_checksum"] == row.request_checksum
            assert res.params["grid"] == {} and res.params["policy"] == row.policy


@pytest.mark.slow
def test_dask_cluster_over_tls(scen, tmp_path, capsys):
    """--scheduler tls:// with the client's certificate (one CA signs all three)."""
    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make certificates")
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=spbsim-test-ca")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
        "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "san.ext")
    tls = ["--tls-ca-file", str(tmp_path / "ca.pem"), "--tls-cert", str(tmp_path / "node.pem"),
           "--tls-key", str(tmp_path / "node.key")]
    with DaskCluster(tmp_path, "tls", tls) as cl:
        out = str(tmp_path / "out")
        main_args = ["sweep", scen, "--policy", "stock", "--duration", "1s", "--out", out,
                     "--scheduler", cl.address]
        with pytest.raises(SystemExit):        # no certificate: cannot connect
            main(main_args + ["--rerun"])
        assert "cannot connect" in capsys.readouterr().err
        main(main_args + tls)                  # exit status 0: returns
        assert list(load_sweep(out).status) == ["ok"]


def test_compare_runs_on_the_sweep_runner_with_run_option_names(scen, tmp_path, monkeypatch):
    """spbsim compare runs its (policy, seed) cells on the sweep's dask
    runner (--jobs local worker processes) and takes run's --memory and a
    first --seed, as sweep does."""
    import spbsim.sweep as S
    from spbsim.report.cli_cmds import seed_arg
    started = []
    real = S._start_client

    def spy(workers, *a):
        started.append(workers)
        return real(workers, *a)
    monkeypatch.setattr(S, "_start_client", spy)
    out = tmp_path / "cmp"
    main(["compare", scen, "--policy", "stock", "--policy", "stock:defrag", "--seed", "5",
         "--seeds", "2", "--memory", "1536M", "--jobs", "2", "--no-report",
         "--out", str(out)])
    assert started == [2]
    meta = json.load(open(out / "compare.json"))
    assert meta["seeds"] == [5, 6] and meta["overrides"]["scenario.memory"] == "1536M"
    for pol in ("stock", "stock_defrag"):
        for sd in (5, 6):
            s = json.load(open(out / pol / f"seed{sd}" / "summary.json"))
            assert (s["seed"], s["memory"]) == (sd, 1536 << 20)
    # sweep: the same options, the same meaning
    meta, jobs = plan_sweep(scen, ["stock"], seed_arg(3, 2), [("cpus", ["1", "2"])],
                            {"scenario.memory": "1536M"})
    assert meta["seeds"] == [3, 4] and {j["overrides"]["scenario.memory"] for j in jobs} == {"1536M"}
    with pytest.raises(S.SweepError, match="--grid memory: also given with --set"):
        plan_sweep(scen, ["stock"], 1, [("memory", ["1G"])], {"scenario.memory": "1536M"})


@pytest.mark.parametrize("scheduler, started", [(None, True), ("tcp://127.0.0.1:1", False)])
def test_a_local_sweep_starts_the_compile_helper(monkeypatch, tmp_path, scheduler, started):
    """On a local cluster the workers compile on this machine: the sweep
    starts spbsim.precompile's helper (which returns at once on a warm
    cache); on a remote scheduler it does not."""
    from spbsim import cli, precompile
    from spbsim import sweep as sweep_mod
    calls = []
    monkeypatch.setattr(cli, "_precompile", [])
    monkeypatch.setattr(precompile, "start", lambda force=False: calls.append(force))
    monkeypatch.setattr(sweep_mod, "run_sweep", lambda *a, **k: {
        "ok": 1, "total": 1, "failed": 0, "ran": 1, "skipped": 0, "path": str(tmp_path),
        "unpaired": False, "interrupted": False})
    argv = ["sweep", "kbuild", "--out", str(tmp_path)]
    if scheduler:
        argv += ["--scheduler", scheduler]
    main(argv)
    assert calls == ([False] if started else [])
