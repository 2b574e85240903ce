"""spbsim.mm.jit calls a large compiled callee where it is loaded instead of
linking its code into each caller: the caller's module declares it, a cached
caller loads its callees first, and a caller whose callee was recompiled
since is compiled again.  A function compiled as a callee has no wrapper for
calls from Python until Python calls it.  Each step runs in its own process on
a fresh cache.  A process that misses a function another process is
compiling waits for it and loads it."""
import json
import subprocess
import sys
import textwrap

import pytest

TOY = textwrap.dedent('''
    from spbsim.mm import jit_numba
    jit_numba.PACKAGES.add(__name__)
    from spbsim.mm.jit import njit

    @njit
    def big(a, n):                  # many blocks: called, not linked
        s = 0
        for i in range(n):
            x = a[i]
            if x > 3:
                s += 1
            elif x < -3:
                s -= 2
            elif x == 0:
                s += 7
            elif x == 1:
                s *= 3
            elif x == 2:
                s ^= 5
            else:
                s -= x
            if s > 1000:
                s //= 3
            elif s < -1000:
                s = -s // 5
            while s > 500 and x > 0:
                s -= x * 3
        return s

    @njit
    def small(x):                   # one block: linked as numba does
        return x + 1

    @njit
    def mid(a, n):
        return big(a, n) + big(a, n - 1) + small(n)

    @njit
    def top(a, n):
        return mid(a, n) * 2 + big(a, 3)
''')

RUN = textwrap.dedent('''
    import json, pathlib, sys
    import numpy as np
    import linktoy as t
    a = np.arange(-20, 20, dtype=np.int64) % 11 - 5
    if "--shift" in sys.argv:
        t.small(3)                  # another compile order: other symbol names
    got = int(t.top(a, 40))
    big, small = t.big.py_func, t.small.py_func
    want = (big(a, 40) + big(a, 39) + small(40)) * 2 + big(a, 3)
    sig = t.top.signatures[0]
    lib = t.top.overloads[sig].library
    out = dict(got=got, want=int(want),
               top_hits=sum(t.top.stats.cache_hits.values()),
               big_hits=sum(t.big.stats.cache_hits.values()),
               callees=sorted(q for m, q, a in getattr(lib, "_spbsim_callees", {}).values()))
    if t.top.stats.cache_misses:    # compiled here: what its module holds
        mod = lib._final_module
        name = {q: t.__dict__[q].overloads[sig if q != "small" else t.small.signatures[0]]
                .fndesc.mangled_name for q in ("big", "small")}
        fns = {f.name: f for f in mod.functions}
        out["declared"] = sorted(q for q, n in name.items() if n in fns and fns[n].is_declaration)
    if "--from-python" in sys.argv:
        import gc
        from spbsim.mm import jit_numba
        wrapped = lambda d: jit_numba._has_python_wrapper(next(iter(d.overloads.values())))
        out["wrapped_before"] = [q for q in ("top", "big") if wrapped(t.__dict__[q])]
        calls = []
        for _ in range(2):          # the second round through numba's own table
            calls += [bool(t.big(a, 40) == big(a, 40)), bool(t.small(4) == small(4)),
                      bool(t.mid(a, 40) == big(a, 40) + big(a, 39) + small(40))]
            gc.collect()
        # a second miss for the same overload (another thread's) gets the same entry
        calls.append(t.big._compile_for_args(a, 40) is t.big._spbsim_python_entries[sig])
        out["python_calls_agree"] = calls
        out["wrapper_files"] = len(list(pathlib.Path(t.top._cache.cache_path).glob("*.nbw")))
    print(json.dumps(out))
''')


@pytest.fixture
def toy(tmp_path):
    (tmp_path / "linktoy.py").write_text(TOY)
    (tmp_path / "run.py").write_text(RUN)

    def run(*args, env=None):
        import os
        e = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), **(env or {}))
        e["PYTHONPATH"] = os.pathsep.join([str(tmp_path), e.get("PYTHONPATH", "")])
        r = subprocess.run([sys.executable, str(tmp_path / "run.py"), *args],
                           check=False, capture_output=True, text=True, env=e, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.splitlines()[-1])
    run.cache = tmp_path / "cache"
    return run


def test_a_large_callee_is_called_not_linked_and_loads_before_its_cached_caller(toy):
    first = toy()
    assert first["got"] == first["want"]
    assert first["top_hits"] == 0
    # the caller's module declares the large callee (the small one is linked)
    assert first["declared"] == ["big"]
    assert first["callees"] == ["big"]
    again = toy()
    assert again["got"] == again["want"] == first["got"]
    assert again["top_hits"] == 1 and again["big_hits"] == 1
    assert again["callees"] == ["big"]


def test_a_caller_whose_callee_was_recompiled_is_compiled_again(toy):
    first = toy()
    for f in toy.cache.rglob("linktoy.big-*"):
        f.unlink()
    second = toy("--shift")         # big compiles anew under another symbol
    assert second["got"] == second["want"] == first["got"]
    assert second["top_hits"] == 0 and second["big_hits"] == 0
    assert second["declared"] == ["big"]
    third = toy()
    assert third["got"] == first["got"] and third["top_hits"] == 1


def test_call_min_blocks_zero_links_every_callee_as_numba_does(toy):
    r = toy(env={"SPBSIM_CALL_MIN_BLOCKS": "0"})
    assert r["got"] == r["want"]
    assert r["declared"] == [] and r["callees"] == []


def test_a_callee_gets_its_python_wrapper_when_python_calls_it(toy):
    first = toy("--from-python")
    # compiled from Python: a wrapper; compiled as a callee: none until called
    assert first["wrapped_before"] == ["top"]
    assert first["python_calls_agree"] == [True] * 7
    assert first["wrapper_files"] == 3          # big, small, mid, kept beside them
    again = toy("--from-python")                # cached: functions and wrappers loaded
    assert again["top_hits"] == 1
    assert again["python_calls_agree"] == [True] * 7
    assert again["wrapper_files"] == 3


@pytest.mark.parametrize("name, value, message", [
    ("SPBSIM_CALL_MIN_BLOCKS", "abc",
     "expected a whole number of basic blocks (0 = link every callee), got 'abc'"),
    ("SPBSIM_COMPILE_LOCK_WAIT", "soon", "expected a number of seconds, got 'soon'"),
])
def test_a_bad_setting_in_the_environment_is_one_line_and_exit_2(name, value, message):
    import os
    r = subprocess.run([sys.executable, "-c", "import spbsim.mm.jit"], check=False,
                       capture_output=True, text=True, env=dict(os.environ, **{name: value}))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"spbsim: {name}: {message}"]


def _cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])          # utime + stime


def _has_open(pid, path):
    import os
    fds = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(os.path.join(fds, fd)) == path for fd in os.listdir(fds))
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_process_waits_for_one_compiling_the_function_and_loads_what_it_saved(toy, tmp_path):
    """A cache miss takes the function's compile lock (flock on its index):
    while another process holds it, the miss waits without compiling, and
    then loads what that process saved."""
    import fcntl
    import os
    import time
    toy()
    index = next(toy.cache.rglob("linktoy.top-*.nbi"))
    saved = {p: p.read_bytes() for p in index.parent.glob(index.name.split(".nbi")[0] + "*")
             if not p.name.endswith(".lock")}
    for p in saved:
        p.unlink()
    with open(str(index) + ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)              # "another process" compiles top
        e = dict(os.environ, NUMBA_CACHE_DIR=str(toy.cache))
        e["PYTHONPATH"] = os.pathsep.join([str(tmp_path), e.get("PYTHONPATH", "")])
        b = subprocess.Popen([sys.executable, str(tmp_path / "run.py")], env=e, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # wait until b holds the lock file open and stops using cpu
            # (blocked on the lock), or ends
            last, still, deadline = -1, 0, time.monotonic() + 120
            while b.poll() is None and still < 4 and time.monotonic() < deadline:
                time.sleep(0.25)
                now = _cpu_ticks(b.pid)
                opened = _has_open(b.pid, str(index) + ".lock")
                still = still + 1 if opened and now == last else 0
                last = now
            assert b.poll() is None, b.communicate()
            for p, data in saved.items():           # what "the other process" saved
                p.write_bytes(data)
        except BaseException:
            b.kill()
            raise
    out, err = b.communicate(timeout=120)
    assert b.returncode == 0, err
    r = json.loads(out.splitlines()[-1])
    assert r["got"] == r["want"]
    assert r["top_hits"] == 1 and "declared" not in r      # loaded, not compiled


def test_a_compile_that_fails_gives_its_lock_back(toy, tmp_path):
    """A typing error unwinds Dispatcher.compile() before save_overload():
    the function's compile lock is given back all the same."""
    (tmp_path / "fail.py").write_text(textwrap.dedent('''
        import json
        import linktoy as t
        from numba.core.errors import TypingError
        from spbsim.mm import jit_numba
        try:
            t.small("x")
            raised = False
        except TypingError:
            raised = True
        print(json.dumps({"raised": raised, "held": len(jit_numba._held),
                          "small": int(t.small(2))}))
    '''))
    import os
    e = dict(os.environ, NUMBA_CACHE_DIR=str(toy.cache))
    e["PYTHONPATH"] = os.pathsep.join([str(tmp_path), e.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, str(tmp_path / "fail.py")], check=False,
                       capture_output=True, text=True, env=e, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == {"raised": True, "held": 0, "small": 3}
