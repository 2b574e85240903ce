"""Shared pytest setup: the ``slow`` marker (whole-oracle tests).

Slow tests are skipped unless ``--runslow`` is given or ``SPBSIM_SLOW=1``.

Subprocesses the tests start (the CLI, dask workers) import the same
spbsim as the tests do: compiled code is cached per source directory, so a
second copy (the installed one beside the checkout) would compile the
whole machine model again.
"""
import os
from pathlib import Path

import pytest

import spbsim

_SRC = str(Path(spbsim.__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_SRC] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _SRC])


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (whole oracle files)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: reads whole oracle files; run with --runslow")


# Test files that call no compiled code, in this process or a subprocess.
# Under pytest-xdist (--dist loadfile, one file per worker at a time) they
# come right after the first file, so while one worker compiles the model
# the other runs them instead of waiting for the compile
# (spbsim.mm.jit_numba: one compile per function across processes).
NO_COMPILE = {"test_docs.py", "test_kpageflags.py", "test_layout.py", "test_list.py",
              "test_policy.py", "test_procfs.py", "test_results.py", "test_scenario.py",
              "test_trace.py", "test_tracefmt.py"}
# Test files that compile only toy functions of their own (the compile rules
# of spbsim.mm.jit_numba): they do not wait for the model's compile either
# and run next.
OWN_COMPILE = {"test_jit_link.py", "test_jit_ssa.py"}
EARLY = NO_COMPILE | OWN_COMPILE


def _file_order(items):
    """The largest file first (it starts the compile), then NO_COMPILE and
    OWN_COMPILE, then the rest largest first, as xdist's
    --loadscope-reorder would."""
    count = {}
    for item in items:
        count[item.path.name] = count.get(item.path.name, 0) + 1
    compiled = sorted((f for f in count if f not in EARLY), key=lambda f: -count[f])
    order = compiled[:1] + sorted((f for f in count if f in NO_COMPILE), key=lambda f: -count[f]) \
        + sorted((f for f in count if f in OWN_COMPILE), key=lambda f: -count[f]) + compiled[1:]
    rank = {f: i for i, f in enumerate(order)}
    items.sort(key=lambda item: rank[item.path.name])


def pytest_collection_finish(session):
    """When the tests selected need the model compiled, one process (the
    first worker, or the only one) starts spbsim.precompile beside the
    suite: on a cold cache it compiles part of the model while the first
    compiled test compiles the rest."""
    config = session.config
    if config.option.collectonly \
            or getattr(config, "workerinput", {}).get("workerid", "gw0") != "gw0":
        return
    if all(item.path.name in EARLY for item in session.items):
        return
    from spbsim import precompile
    proc = precompile.start()
    if proc is not None:
        config.add_cleanup(lambda: precompile.stop(proc))


def pytest_collection_modifyitems(config, items):
    _file_order(items)
    if config.getoption("--runslow") or os.environ.get("SPBSIM_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: use --runslow or SPBSIM_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
