"""Shared pytest setup: the ``slow`` marker (whole-oracle tests).

Slow tests are skipped unless ``--runslow`` is given or ``SPBSIM_SLOW=1``.
"""
import os

import pytest


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
