"""A run's results directory, written once for ``spbsim run``, ``compare``
and ``sweep``: :func:`run_into` opens the writer, records pageblock
snapshots while the simulation runs (:class:`PageblockRecorder`) and ends
the directory (/proc snapshots, the final pageblock arrays, summary.json).
The format is in docs/results.md; ``spbsim.results`` reads it."""
from __future__ import annotations

import math
import os

import numpy as np

from ..results import PAGEBLOCK_SERIES, PAGEBLOCKS, SERIES_VERSION, ResultsWriter

__all__ = ["MAX_FRAMES", "PageblockRecorder", "expected_samples", "save_pageblocks",
           "finish_run_directory", "run_into"]

PROC_FILES = ("buddyinfo", "pagetypeinfo", "vmstat", "zoneinfo", "unusable_index",
              "extfrag_index")

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


def save_pageblocks(machine, out_dir):
    """The final pageblock arrays as out_dir/pageblocks.npz (for the pageblock map)."""
    from ..observe.census import reserved_pageblocks
    m = machine.mem
    path = os.path.join(out_dir, PAGEBLOCKS)
    tmp = path + f".tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez_compressed(f, pb_mt=np.asarray(m.pb_mt), pb_flags=np.asarray(m.pb_flags),
                            pb_zone=np.asarray(m.pb_zone),
                            reserved=reserved_pageblocks(m),
                            pb_taint=np.asarray(m.pb_taint))
    os.replace(tmp, path)
    return path


def finish_run_directory(w, machine, rec, out_dir, summary, taints=None):
    """The end of a run's results directory: the /proc snapshots, the final
    pageblock arrays, the snapshot series, the taint log (``taints``: an
    observe.taints.TaintLog), summary.json."""
    for name in PROC_FILES:
        w.write_text(f"proc/{name}", getattr(machine, name)())
    save_pageblocks(machine, out_dir)
    rec.save(out_dir)
    if taints is not None:
        taints.write(out_dir)
    w.close(summary, complete=not summary["interrupted"])


def run_into(sim, out_dir, params, scenario_text=None):
    """Run ``sim`` (an engine.run.Simulation) to its end, or to Ctrl-C, writing
    its results directory ``out_dir`` as it goes; returns the summary.
    A scenario with a memory map adds it to ``params`` (``memory_map``)."""
    if sim.sc.memory_map is not None and "memory_map" not in params:
        params = {**params, "memory_map": sim.sc.memory_map.describe()}
    with ResultsWriter(out_dir, params, scenario_text) as w:
        rec = PageblockRecorder(w, sim.machine, expected_samples(sim.sc))
        sim.writer = rec
        summary = sim.run()
        finish_run_directory(w, sim.machine, rec, out_dir, summary, sim.taints)
    return summary
