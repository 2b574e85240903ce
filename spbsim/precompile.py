"""A second process that compiles part of the machine model on a cold cache.

numba compiles a function's callees inside its own compile, one at a time:
a cold first run keeps one core busy for minutes.  The helper start()
launches (or ``python -m spbsim.precompile``) compiles, bottom-up and with
their exact signatures, the functions of PLAN (compaction, reclaim, the
daemons, then the refill and slow-path functions above them), while the
first process works down from its entry points; the compile lock of
spbsim.mm.jit_numba makes each function compiled once and loaded by the
other.  Details: docs/performance.md ("Sharing a cold compile").
"""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .mm.jit_numba import _dispatcher

__all__ = ["PLAN", "cached", "compile_plan", "enabled", "main", "signature", "start", "stop"]

#: (module, function, argument kinds), compiled in this order: M the machine
#: state (spbsim.mm.state.Mem), E the engine state (spbsim.engine.state.Eng),
#: i int64, b boolean, as a call from compiled code passes them (integers
#: widen to int64).  First the parts of the call graph that do not reach the
#: allocator's refill paths (the first process starts there: the machine's
#: fill), then the functions above them that do.  Each is a function its
#: callers call, not link (spbsim.mm.jit_numba.CALL_MIN_BLOCKS), so a run
#: loads it with exactly this signature (tests/test_compile_budget.py).
PLAN = (
    ("spbsim.mm.compaction", "try_to_compact_pages", "Miiiiii"),
    ("spbsim.mm.compaction", "kcompactd_run", "Mii"),
    ("spbsim.mm.vmscan", "balance_pgdat", "Mii"),
    ("spbsim.mm.vmscan", "try_to_free_pages", "Miii"),
    ("spbsim.engine.step", "expire_until", "MEii"),
    ("spbsim.mm.workqueue", "run_due_work", "Mi"),
    ("spbsim.mm.compaction", "kcompactd_node_suitable", "M"),
    ("spbsim.mm.page_alloc", "should_reclaim_retry", "Miiiibi"),
    ("spbsim.mm.freelist", "_rmqueue_highatomic", "Mii"),
    ("spbsim.mm.spb.relax", "spb_atomic_relax_step", "Miiii"),
    ("spbsim.mm.fallback", "reserve_highatomic_pageblock", "Miii"),
    ("spbsim.mm.freelist", "rmqueue_buddy", "Miiii"),
    ("spbsim.mm.pcp", "rmqueue_bulk", "Miiiiiii"),
    ("spbsim.mm.spb.work", "spb_run_pending", "Mii"),
    ("spbsim.mm.page_alloc", "spb_slowpath_evacuate", "Miiii"),
    ("spbsim.mm.page_alloc", "alloc_pages_direct_reclaim", "Miiiii"),
    ("spbsim.mm.page_alloc", "direct_compact", "Miiiiiii"),
)


def _state_types():
    """The numba types of the machine and engine states (the shapes do not
    enter them): built with numpy only, no compiled code."""
    import numba

    from .engine.state import new_eng
    from .mm.state import new_mem
    return {"M": numba.typeof(new_mem(1 << 10, 1)), "E": numba.typeof(new_eng(1))}


def signature(kinds, states=None):
    """The argument types a PLAN entry's kinds stand for."""
    from numba.core import types
    states = _state_types() if states is None else states
    simple = {"i": types.int64, "b": types.boolean}
    return tuple(states[k] if k in states else simple[k] for k in kinds)


def compile_plan(plan=PLAN):
    """Compile (or load, where cached) each entry of ``plan`` in order."""
    states = _state_types()
    for module, name, kinds in plan:
        _dispatcher(module, name).compile(signature(kinds, states))


def cached(plan=PLAN):
    """Whether every entry of ``plan`` has a cache index (not whether it is
    current: numba checks that when it loads)."""
    for module, name, _ in plan:
        cache = getattr(_dispatcher(module, name), "_cache", None)
        path = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
        if path is None or not os.path.exists(path):
            return False
    return True


# The helper's Python code: the parent's module search path (so that it
# imports the same spbsim, whose cache the parent uses), then main().
_CHILD = ("import os, sys; "
          "sys.path[:] = os.environ['SPBSIM_PRECOMPILE_PATH'].split(os.pathsep); "
          "from spbsim.precompile import main; sys.exit(main())")


def _child_path():
    """This process's module search path without its working-directory
    entries ('' or relative: ``pip install .`` leaves a checkout there), and
    with the directory this spbsim came from if it is not on it."""
    root = str(Path(__file__).resolve().parents[1])
    path = [p for p in sys.path if p and os.path.isabs(p)]
    if not any(os.path.realpath(p) == root for p in path):
        path.insert(0, root)
    return path


def enabled():
    """$SPBSIM_PRECOMPILE: 1 (the default) or 0; ConfigError otherwise."""
    switch = os.environ.get("SPBSIM_PRECOMPILE", "1")
    if switch not in ("0", "1"):
        from .errors import ConfigError
        raise ConfigError(f"SPBSIM_PRECOMPILE={switch!r}: expected 0 (off) or 1 (on)")
    return switch == "1"


def start(force=False):
    """Start the helper beside this process when it can help (or ``force``):
    PLAN not cached, more than one cpu, $SPBSIM_PRECOMPILE not 0 (ConfigError
    unless 0 or 1).  Returns the Popen, or None (also
    when it cannot be started).  It imports the spbsim this process did,
    with this interpreter's flags, and ends when this process does (or
    stop()).  Its output is discarded; a failure there only leaves the work
    to this process."""
    on = enabled()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cpus = os.cpu_count() or 1
    if not force and (cpus < 2 or not on or cached()):
        return None
    flags = getattr(subprocess, "_args_from_interpreter_flags", list)()
    env = dict(os.environ, SPBSIM_PRECOMPILE_PATH=os.pathsep.join(_child_path()),
               SPBSIM_PRECOMPILE_PARENT=str(os.getpid()))
    try:
        return subprocess.Popen([sys.executable, *flags, "-c", _CHILD], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None


def stop(proc):
    """End a helper that is still compiling (its locks go with it)."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _exit_with_parent(parent):
    """A helper whose parent died without stopping it (SIGKILL, a signal to
    its pid only) stops within a second instead of compiling on."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()


def main():
    parent = os.environ.get("SPBSIM_PRECOMPILE_PARENT", "")
    if parent.isdigit():
        _exit_with_parent(int(parent))
    compile_plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
