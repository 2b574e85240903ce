"""A second process that compiles part of the machine model on a cold cache.

numba compiles a function's callees inside its own compile, one at a time:
a cold first run keeps one core busy for minutes.  ``python -m
spbsim.precompile`` compiles, bottom-up and with their exact signatures, the
functions of PLAN (compaction, reclaim, the daemons, then the allocator's
slow path), while the first process works down from its entry points; the
compile lock of spbsim.mm.jit_numba makes each function compiled once and
loaded by the other.  Details: docs/performance.md ("Sharing a cold compile").
"""
import importlib
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["PLAN", "cached", "compile_plan", "main", "signature", "start", "stop"]

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
    ("spbsim.mm.compaction", "kcompactd_do_work", "Mi"),
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


def _dispatcher(module, name):
    return getattr(importlib.import_module(module), name)


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


def start(force=False):
    """Start ``python -m spbsim.precompile`` beside this process when it can
    help (or ``force``): PLAN not cached and more than one cpu.  Returns the
    Popen, or None.  It runs in the directory this spbsim was imported from,
    so that it imports the same copy and fills the same cache (``python -m``
    looks in the working directory first: after ``pip install .`` that is
    the checkout).  Its output is discarded; a failure there only leaves the
    work to this process."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cpus = os.cpu_count() or 1
    if not force and (cpus < 2 or os.environ.get("SPBSIM_PRECOMPILE") == "0" or cached()):
        return None
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-m", "spbsim.precompile"], cwd=root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc):
    """End a helper that is still compiling (its locks go with it)."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    compile_plan()
    return 0


if __name__ == "__main__":
    sys.exit(main())
