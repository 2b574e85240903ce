"""Pageblock snapshots over simulated time (for the pageblock map animation).

:class:`PageblockRecorder` stands in for the results writer the engine calls
every ``sample_interval``: it forwards each row and, every ``stride``-th row,
copies the machine's ``pb_mt`` and ``pb_flags`` (2 bytes per pageblock), so
the engine is unchanged.  ``save(out)`` writes ``pageblocks_series.npz``
(at most ``max_frames`` evenly spaced frames plus the final state); its
format is in docs/results.md.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..results import ResultsError

__all__ = ["PAGEBLOCK_SERIES", "SERIES_VERSION", "MAX_FRAMES", "PageblockRecorder",
           "expected_samples", "load_pageblock_series", "load_pageblocks"]

PAGEBLOCK_SERIES = "pageblocks_series.npz"
SERIES_VERSION = 1
#: default cap on the frames a run keeps (matplotlib's GIF writer holds every
#: frame in memory: 60 frames of the tallest map are ~180 MB)
MAX_FRAMES = 60


def expected_samples(scenario):
    """How many rows the engine samples for ``scenario`` (one per
    sample_interval from t=0, plus the final one)."""
    n = int(math.floor(scenario.duration_s / scenario.sample_interval_s + 1e-9)) + 1
    return n + 1


class PageblockRecorder:
    """A results-writer proxy that also keeps pageblock snapshots.

    ``writer``: the ResultsWriter (or None: snapshots only).  ``machine``: the
    simulated Machine (its ``mem.pb_mt``/``pb_flags``/``pb_zone`` are read).
    ``n_samples``: the number of rows expected (sets the stride so that at most
    ``max_frames`` frames are kept).  Any other attribute is the writer's.
    """

    def __init__(self, writer, machine, n_samples, max_frames=MAX_FRAMES):
        if max_frames < 2:
            raise ValueError("max_frames must be >= 2")
        self.writer = writer
        self.machine = machine
        # the final state is always added by save(): keep max_frames - 1 periodic ones
        self.stride = max(1, math.ceil(max(1, int(n_samples)) / (max_frames - 1)))
        self.max_frames = int(max_frames)
        self.t_s, self.mt, self.flags = [], [], []
        self._n = 0
        self._last_t = None
        self._last_taken = False

    def _snap(self, t_s):
        mem = self.machine.mem
        self.t_s.append(float(t_s))
        self.mt.append(np.array(mem.pb_mt, dtype=np.uint8, copy=True))
        self.flags.append(np.array(mem.pb_flags, dtype=np.uint8, copy=True))

    def append_sample(self, row):
        if self.writer is not None:
            self.writer.append_sample(row)
        t = float(row.get("t_s", self._n))
        self._last_t = t
        self._last_taken = self._n % self.stride == 0 and len(self.t_s) < self.max_frames - 1
        if self._last_taken:
            self._snap(t)
        self._n += 1

    def __getattr__(self, name):          # close, update_summary, write_text, ...
        if name == "writer" or self.__dict__.get("writer") is None:
            raise AttributeError(name)
        return getattr(self.writer, name)

    @property
    def n_frames(self):
        return len(self.t_s)

    def save(self, out_dir):
        """Add the final state (unless the last sample was kept) and write
        ``out_dir/pageblocks_series.npz``; returns its path (None if nothing
        was sampled)."""
        if self._last_t is not None and not self._last_taken:
            self._snap(self._last_t)
            self._last_taken = True
        if not self.t_s:
            return None
        path = os.path.join(os.fspath(out_dir), PAGEBLOCK_SERIES)
        tmp = path + f".tmp.{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez_compressed(f, format_version=np.int64(SERIES_VERSION),
                                t_s=np.asarray(self.t_s, np.float64),
                                pb_mt=np.stack(self.mt), pb_flags=np.stack(self.flags),
                                pb_zone=np.asarray(self.machine.mem.pb_zone, np.int8))
        os.replace(tmp, path)
        return path


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
    {"pb_mt", "pb_flags", "pb_zone"}; ResultsError naming the file when it is
    unreadable or lacks an array."""
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
    return {k: data[k] for k in ("pb_mt", "pb_flags", "pb_zone")}
