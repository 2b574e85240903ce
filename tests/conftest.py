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


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("SPBSIM_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: use --runslow or SPBSIM_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
