"""Reading the pageblock arrays of a results directory: the final state
(``pageblocks.npz``) and the snapshots over simulated time
(``pageblocks_series.npz``, for the pageblock map animation).  They are
written by spbsim.engine.rundir; the format is in docs/results.md.
"""
from __future__ import annotations

import os

import numpy as np

from ..engine.rundir import MAX_FRAMES, PageblockRecorder, expected_samples  # noqa: F401 (moved)
from ..results import PAGEBLOCK_SERIES, SERIES_VERSION, ResultsError

__all__ = ["PAGEBLOCK_SERIES", "SERIES_VERSION", "MAX_FRAMES", "PageblockRecorder",
           "expected_samples", "load_pageblock_series", "load_pageblocks"]

def load_pageblock_series(path):
    """Read a ``pageblocks_series.npz`` (or the results directory holding one).

    Returns {"t_s", "pb_mt", "pb_flags", "pb_zone"}; ResultsError naming the
    file when it is missing, unreadable, incomplete, or of another
    format_version."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, PAGEBLOCK_SERIES)
    if not os.path.isfile(path):
        raise ResultsError(f"{os.path.dirname(path) or '.'}: missing "
                           f"{os.path.basename(path)} (pageblock snapshots: written by "
                           f"`spbsim run` and `spbsim compare`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:      # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise ResultsError(f"{path}: unreadable .npz file: {e}") from None
    need = ["format_version", "t_s", "pb_mt", "pb_flags", "pb_zone"]
    missing = [k for k in need if k not in data]
    if missing:
        raise ResultsError(f"{path}: missing arrays {missing} (not written by this spbsim?)")
    ver = int(data["format_version"])
    if ver != SERIES_VERSION:
        rel = "newer" if ver > SERIES_VERSION else "older"
        raise ResultsError(f"{path}: format_version {ver} is {rel} than this spbsim reads "
                           f"({SERIES_VERSION})")
    k = data["t_s"].shape[0]
    n = data["pb_zone"].shape[0]
    if data["pb_mt"].shape != (k, n) or data["pb_flags"].shape != (k, n):
        raise ResultsError(f"{path}: inconsistent shapes: t_s {data['t_s'].shape}, pb_mt "
                           f"{data['pb_mt'].shape}, pb_flags {data['pb_flags'].shape}, "
                           f"pb_zone {data['pb_zone'].shape}")
    if k == 0:
        raise ResultsError(f"{path}: no frames")
    return {"t_s": data["t_s"], "pb_mt": data["pb_mt"], "pb_flags": data["pb_flags"],
            "pb_zone": data["pb_zone"]}


def load_pageblocks(path):
    """Read a run's final ``pageblocks.npz`` (written by save_pageblocks):
    {"pb_mt", "pb_flags", "pb_zone"} and, when saved, "pb_taint"; ResultsError
    naming the file when it is unreadable or lacks an array."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ResultsError(f"{os.path.dirname(path) or '.'}: missing "
                           f"{os.path.basename(path)}") from None
    except Exception as e:
        raise ResultsError(f"{path}: unreadable .npz file: {e}") from None
    missing = [k for k in ("pb_mt", "pb_flags", "pb_zone") if k not in data]
    if missing:
        raise ResultsError(f"{path}: missing arrays {missing} (not written by this spbsim?)")
    if not data["pb_mt"].shape == data["pb_flags"].shape == data["pb_zone"].shape:
        raise ResultsError(f"{path}: pb_mt, pb_flags and pb_zone differ in shape")
    out = {k: data[k] for k in ("pb_mt", "pb_flags", "pb_zone")}
    if "pb_taint" in data and data["pb_taint"].shape == data["pb_mt"].shape:
        out["pb_taint"] = data["pb_taint"]      # the taint marks (owner + 1), when saved
    return out
