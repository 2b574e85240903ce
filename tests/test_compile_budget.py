"""The number of numba specialisations a default `spbsim run` compiles stays
within spbsim.compile_progress.COMPILE_BUDGET (quoted in docs/performance.md),
and the compile progress lines."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spbsim import compile_progress
from spbsim.compile_progress import COMPILE_BUDGET

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh process (no other test's compiled code in memory): 5 s of the
# default scenario with its 1 GB source moved from 450 s to 1 s (so that the
# job calls every entry point the 600 s run calls, and alloc_contig_range,
# since the 1 GB requests succeed on the young machine), then count what it
# needs compiled.  On a warm cache
# numba loads only the functions called from Python (the entry points); their
# callees were linked into them when compiled and are not loaded.  So the
# callees are found by following, from each entry point, the global names its
# bytecode uses that are numba dispatchers, through inlined functions
# (inline="always": compiled into their callers, not on their own).  An entry
# point counts once per signature this run used (in memory); a callee counts
# once (calls from compiled code widen integers, spbsim.mm.jit.njit): the
# on-disk index is not read, as it also holds what other commands and tests
# compiled into the same cache, which made the count depend on their order.
_COUNT = r'''
import json, sys, types
from pathlib import Path
import numba
from numba.core.registry import CPUDispatcher
from spbsim.cli import main
try:
    # 5 s of the default scenario, its 1 GB source (normally from 450 s) from 1 s
    main(["run", "--duration", "5s", "--set", "source.hugetlb-1g.start=1s",
          "--out", sys.argv[1]])
except SystemExit as e:
    assert not e.code, e.code
from spbsim.mm.jit import cache_dir

def dispatchers():
    seen = {}
    for name, mod in list(sys.modules.items()):
        if not name.startswith("spbsim") or mod is None:
            continue
        for v in vars(mod).values():
            if isinstance(v, CPUDispatcher):
                seen[id(v)] = v
    return list(seen.values())

def names(code):
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from names(c)

def callees(d):
    g = d.py_func.__globals__
    ns = set(names(d.py_func.__code__))
    for n in ns:
        v = g.get(n)
        if isinstance(v, CPUDispatcher):
            yield v
        elif isinstance(v, types.ModuleType):
            for a in ns:
                w = getattr(v, a, None)
                if isinstance(w, CPUDispatcher):
                    yield w

def inline(d):
    return d.targetoptions.get("inline") == "always"

entries = [d for d in dispatchers() if d.overloads]
need, todo = {}, list(entries)
while todo:
    d = todo.pop()
    if id(d) in need:
        continue
    need[id(d)] = d
    todo.extend(callees(d))
count, rows = 0, []
for d in need.values():
    if inline(d) and not d.overloads:
        continue
    n = len(d.signatures) if d.overloads else 1
    count += n
    rows.append((f"{d.py_func.__module__}.{d.py_func.__qualname__}", n, bool(d.overloads)))
from spbsim import precompile
states = precompile._state_types()
plan = [(f"{mod}.{name}", precompile.signature(kinds, states)
         in precompile._dispatcher(mod, name).overloads) for mod, name, kinds in precompile.PLAN]
print(json.dumps({"count": count, "entries": len(entries), "rows": sorted(rows), "plan": plan}))
'''


def _count(tmp_path):
    r = subprocess.run([sys.executable, "-c", _COUNT, str(tmp_path / "out")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_default_run_compiles_within_the_budget(tmp_path):
    got = _count(tmp_path)
    listing = "\n".join(f"  {n} x{k}" for n, k, _ in got["rows"])
    assert got["count"] <= COMPILE_BUDGET, (
        f"a default run needs {got['count']} compiled specialisations, the budget is "
        f"{COMPILE_BUDGET} (spbsim/compile_progress.py, docs/performance.md): a change "
        f"added compiled functions or signatures; raise the budget only on purpose:\n{listing}")
    assert got["entries"] > 0
    # spbsim.precompile.PLAN: each entry with the signature the run itself
    # compiled or loaded (a wrong one compiles code no run uses)
    assert got["plan"] and all(ok for _, ok in got["plan"]), (
        "spbsim.precompile.PLAN entries the default run did not load with that signature "
        "(argument kinds, or a callee now linked into its callers): "
        + ", ".join(name for name, ok in got["plan"] if not ok))


def test_precompile_imports_the_spbsim_that_started_it(tmp_path, monkeypatch):
    """Started from a directory holding another spbsim (the checkout after
    `pip install .`), the helper still imports this one, whose cache the
    command uses."""
    decoy = tmp_path / "spbsim"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy spbsim')\n")
    monkeypatch.chdir(tmp_path)
    from spbsim import precompile
    proc = precompile.start(force=True)
    try:
        assert proc.wait(timeout=1800) == 0
    finally:
        precompile.stop(proc)


def test_precompile_ends_with_its_parent(tmp_path):
    """A helper whose parent dies without stopping it (SIGKILL) exits on its
    own instead of compiling on (here: a cold compile into an empty cache,
    minutes of work)."""
    pid_file = tmp_path / "helper.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c",
         ("import sys, time\n"
          "from spbsim import precompile\n"
          "proc = precompile.start(force=True)\n"
          f"open({str(pid_file)!r}, 'w').write(str(proc.pid))\n"
          "time.sleep(600)\n")],
        env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache")))
    try:
        for _ in range(600):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        helper = int(pid_file.read_text())
    finally:
        parent.kill()
        parent.wait()
    for _ in range(100):                     # the watch looks once a second
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{helper}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return                           # exited, not yet reaped by init
        time.sleep(0.1)
    os.kill(helper, 9)
    raise AssertionError("the helper outlived its parent by 10 s")


def test_a_bad_precompile_switch_is_one_clear_error():
    """SPBSIM_PRECOMPILE takes 0 or 1: another value (off, say) is one line
    and exit 2, not the helper started against the user's wish."""
    env = dict(os.environ, SPBSIM_PRECOMPILE="off")
    r = subprocess.run([sys.executable, "-m", "spbsim.cli", "churn", "--memory", "1G",
                        "--ops", "10", "--out", os.devnull], env=env, capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "spbsim: error: SPBSIM_PRECOMPILE='off': expected 0 (off) or 1 (on)"]


def test_precompile_runs_as_a_module():
    """`python -m spbsim.precompile`, as spbsim.precompile.start() runs it."""
    r = subprocess.run([sys.executable, "-m", "spbsim.precompile"], capture_output=True,
                       text=True, timeout=1800, check=False)
    assert r.returncode == 0, r.stderr[-3000:]


def test_performance_md_quotes_the_budget():
    doc = (ROOT / "docs" / "performance.md").read_text()
    m = re.search(r"compile budget[^0-9]{0,80}(\d+)", doc, re.I)
    assert m, "docs/performance.md does not state the compile budget"
    assert int(m.group(1)) == COMPILE_BUDGET


def test_progress_lines_name_the_function_and_the_count(monkeypatch, capsys):
    monkeypatch.setattr(compile_progress, "_EVERY_S", 0.0)
    monkeypatch.setattr(compile_progress, "_IDLE_S", 0.0)
    p = compile_progress._Progress(expected=3)
    p.start("rmqueue_bulk")
    p.start("__rmqueue_smallest")
    p.end()
    p.end()
    p.thread.join(timeout=10)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("spbsim: compiling 1/~3 (0:00): rmqueue_bulk")
    assert err[1].startswith("spbsim: compiling 2/~3 (0:00): __rmqueue_smallest")
    assert err[-1].startswith("spbsim: compiled 2 functions in 0:00")
