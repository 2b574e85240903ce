"""Results directories: the writer the engine fills and the loader readers use.

A results directory holds ``summary.json`` (``format_version``, ``complete``),
``params.json``, ``scenario.toml``, ``timeseries.parquet`` and ``proc/``
snapshots; docs/results.md describes every file.  Files are written to a
temporary name and renamed, and ``summary.json`` (``complete: false``) exists
from the start, so a run interrupted inside ``with ResultsWriter(...)``
leaves a directory that :func:`load` reads; a killed run leaves no
``timeseries.parquet``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import SpbsimError

__all__ = ["FORMAT_VERSION", "ResultsError", "ResultsWriter", "Results", "load", "load_sweep"]

FORMAT_VERSION = 1
TIMESERIES = "timeseries.parquet"
SUMMARY = "summary.json"
PARAMS = "params.json"
SCENARIO = "scenario.toml"
PROC = "proc"
PAGEBLOCKS = "pageblocks.npz"                 # the final pageblock arrays
PAGEBLOCK_SERIES = "pageblocks_series.npz"    # pageblock snapshots over time
TAINTS = "taints.parquet"                     # who polluted / tainted what, when
SERIES_VERSION = 1


class ResultsError(SpbsimError):
    """A results directory that cannot be read (the message names the file)."""


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def _dump_json(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n"


def _atomic_write(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class ResultsWriter:
    """Write a results directory.

    ``append_sample(row)`` buffers rows (dicts of column -> int/float) and
    writes every ``flush_rows`` rows as a row group of ``timeseries.parquet``
    through one ``pyarrow.parquet.ParquetWriter``; the columns and their types
    (int64 for ints, float64 for floats) are fixed by the first row.
    ``close(summary)`` flushes, closes the Parquet file and writes
    ``summary.json`` with ``format_version`` and ``complete``.

    As a context manager, leaving the ``with`` block by an exception
    (KeyboardInterrupt included) closes the writer with ``complete: false``,
    the exception's name under ``"interrupted"`` and whatever was given to
    :meth:`update_summary`; the exception propagates.  Leaving it normally
    without having called ``close`` closes with ``complete: true``.
    """

    def __init__(self, out_dir, params: dict, scenario_text: str | None = None,
                 flush_rows: int = 1000):
        if flush_rows < 1:
            raise ValueError("flush_rows must be >= 1")
        self.out_dir = os.fspath(out_dir)
        self.flush_rows = int(flush_rows)
        self.closed = False
        self.n_rows = 0
        self._columns = None          # [name, ...] from the first row
        self._kinds = None            # {name: "i" | "f"}
        self._buf = None              # {name: list}
        self._nbuf = 0
        self._pq_writer = None
        self._schema = None
        self._partial = {}
        try:
            os.makedirs(self.out_dir, exist_ok=True)
        except OSError as e:
            raise ResultsError(f"{self.out_dir}: cannot create the results directory: "
                               f"{e.strerror}") from None
        self._ts_tmp = os.path.join(self.out_dir, TIMESERIES + ".tmp")
        # A stale time series of an earlier run in the same directory must not survive.
        # Files of an earlier run in the same directory must not survive into this one.
        stale = [os.path.join(self.out_dir, n) for n in (TIMESERIES, SCENARIO, TAINTS)] + [self._ts_tmp]
        proc_dir = os.path.join(self.out_dir, PROC)
        if os.path.isdir(proc_dir):
            stale += [os.path.join(proc_dir, n) for n in os.listdir(proc_dir)]
        for p in stale:
            if os.path.isfile(p):
                os.remove(p)
        self.write_json(PARAMS, params)
        if scenario_text is not None:
            self.write_text(SCENARIO, scenario_text)
        self.write_json(SUMMARY, {"format_version": FORMAT_VERSION, "complete": False,
                                  "status": "running"})

    # -- files -------------------------------------------------------------
    def _path(self, relpath):
        rel = os.path.normpath(os.fspath(relpath))
        if os.path.isabs(rel) or rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            raise ValueError(f"{relpath!r}: expected a path inside the results directory")
        path = os.path.join(self.out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def write_text(self, relpath, text: str):
        """Write ``out_dir/relpath`` atomically (temporary file + rename)."""
        _atomic_write(self._path(relpath), text)

    def write_json(self, relpath, obj):
        """Write ``obj`` as indented, key-sorted JSON (numpy scalars allowed)."""
        self.write_text(relpath, _dump_json(obj))

    # -- time series ---------------------------------------------------------
    def append_sample(self, row: dict):
        """Buffer one row; written every ``flush_rows`` rows."""
        if self.closed:
            raise ValueError("append_sample() on a closed ResultsWriter")
        if self._columns is None:
            self._start_schema(row)
        elif len(row) != len(self._columns) or any(k not in self._kinds for k in row):
            extra = sorted(set(row) - set(self._kinds))
            missing = [k for k in self._columns if k not in row]
            raise ValueError(f"sample {self.n_rows}: columns differ from the first row's "
                             f"(extra: {extra}, missing: {missing})")
        vals = {}
        for k, v in row.items():           # check the whole row before buffering any of it
            if self._kinds[k] == "i":
                if not isinstance(v, (bool, np.bool_, int, np.integer)):
                    raise TypeError(f"sample {self.n_rows}: column {k!r} is int64 (from the "
                                    f"first row) but got {v!r}: give the first row a float")
                vals[k] = int(v)
            else:
                if not isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating)):
                    raise TypeError(f"sample {self.n_rows}: column {k!r}: expected a number, "
                                    f"got {v!r}")
                vals[k] = float(v)
        for k, v in vals.items():
            self._buf[k].append(v)
        self.n_rows += 1
        self._nbuf += 1
        if self._nbuf >= self.flush_rows:
            self.flush()

    def _start_schema(self, row):
        import pyarrow as pa
        if not row:
            raise ValueError("the first sample has no columns")
        kinds = {}
        fields = []
        for k, v in row.items():
            if not isinstance(k, str):
                raise TypeError(f"column names must be strings, got {k!r}")
            if isinstance(v, (bool, np.bool_, int, np.integer)):
                kinds[k] = "i"
                fields.append(pa.field(k, pa.int64()))
            elif isinstance(v, (float, np.floating)):
                kinds[k] = "f"
                fields.append(pa.field(k, pa.float64()))
            else:
                raise TypeError(f"column {k!r}: expected an int or a float, got {v!r}")
        self._columns = list(row)
        self._kinds = kinds
        self._schema = pa.schema(fields)
        self._buf = {k: [] for k in self._columns}

    def flush(self):
        """Write buffered rows as one row group."""
        if not self._nbuf:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq
        arrays = [pa.array(np.asarray(self._buf[k], np.int64 if self._kinds[k] == "i"
                                      else np.float64)) for k in self._columns]
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        if self._pq_writer is None:
            self._pq_writer = pq.ParquetWriter(self._ts_tmp, self._schema, compression="zstd")
        self._pq_writer.write_table(table)
        self._buf = {k: [] for k in self._columns}
        self._nbuf = 0

    def _finish_timeseries(self):
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:
            self.flush()
        finally:
            if self._pq_writer is None:
                schema = self._schema if self._schema is not None else pa.schema([])
                self._pq_writer = pq.ParquetWriter(self._ts_tmp, schema, compression="zstd")
            self._pq_writer.close()
        os.replace(self._ts_tmp, os.path.join(self.out_dir, TIMESERIES))

    # -- summary -------------------------------------------------------------
    def update_summary(self, **items):
        """Remember summary items, written by close() and kept on interruption."""
        self._partial.update(items)

    def close(self, summary: dict | None = None, complete: bool | None = None):
        """Flush and close the time series, then write summary.json.

        ``complete`` defaults to ``summary.get("complete", True)``.
        """
        if self.closed:
            return
        self.closed = True
        out = dict(self._partial)
        out.update(summary or {})
        if complete is None:
            complete = bool(out.get("complete", True))
        out["format_version"] = FORMAT_VERSION
        out["complete"] = bool(complete)
        out.setdefault("samples", self.n_rows)
        try:
            self._finish_timeseries()
        finally:
            self.write_json(SUMMARY, _finite(out))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.closed:
            return False
        if exc_type is None:
            self.close()
        else:
            self.close({"interrupted": exc_type.__name__,
                        **({"error": str(exc)} if str(exc) else {})}, complete=False)
        return False


def _finite(obj):
    """JSON has no NaN/Infinity: write them as strings."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return str(float(obj))
    return obj


@dataclass
class Results:
    """A loaded results directory."""
    path: str
    timeseries: object                 # pandas.DataFrame
    summary: dict
    params: dict
    proc: dict = field(default_factory=dict)
    scenario_text: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.summary.get("complete", False))


def _read_json(d, name, required):
    path = os.path.join(d, name)
    if not os.path.isfile(path):
        if required:
            raise ResultsError(f"{d}: missing {name} (not a results directory, or the run "
                               f"was killed before writing it)")
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: unreadable JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return obj


def _read_text(path, errors="strict"):
    try:
        with open(path, encoding="utf-8", errors=errors) as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ResultsError(f"{path}: unreadable: {e.strerror or e}") from None


def load(dir) -> Results:
    """Read a results directory written by :class:`ResultsWriter`."""
    d = os.fspath(dir)
    if not os.path.exists(d):
        raise ResultsError(f"{d}: no such results directory")
    if not os.path.isdir(d):
        raise ResultsError(f"{d}: not a directory")
    summary = _read_json(d, SUMMARY, required=True)
    ver = summary.get("format_version")
    if ver is None:
        raise ResultsError(f"{os.path.join(d, SUMMARY)}: no format_version (written by an "
                           f"older spbsim?); this spbsim reads format_version {FORMAT_VERSION}")
    if not isinstance(ver, int) or isinstance(ver, bool):
        raise ResultsError(f"{os.path.join(d, SUMMARY)}: format_version {ver!r} is not an "
                           f"integer; this spbsim reads format_version {FORMAT_VERSION}")
    if ver > FORMAT_VERSION:
        raise ResultsError(f"{os.path.join(d, SUMMARY)}: format_version {ver} is newer than "
                           f"this spbsim supports ({FORMAT_VERSION}): upgrade spbsim")
    if ver < FORMAT_VERSION:
        raise ResultsError(f"{os.path.join(d, SUMMARY)}: format_version {ver} is older than "
                           f"this spbsim supports ({FORMAT_VERSION}): re-run the simulation")
    params = _read_json(d, PARAMS, required=False)
    ts_path = os.path.join(d, TIMESERIES)
    if not os.path.isfile(ts_path):
        raise ResultsError(f"{d}: missing {TIMESERIES}"
                           + (" (the run did not finish)" if not summary.get("complete") else ""))
    import pyarrow.parquet as pq
    try:
        timeseries = pq.read_table(ts_path).to_pandas()
    except Exception as e:   # pyarrow raises ArrowInvalid, OSError, ...
        raise ResultsError(f"{ts_path}: unreadable Parquet file: {e}") from None
    proc = {}
    proc_dir = os.path.join(d, PROC)
    if os.path.isdir(proc_dir):
        for name in sorted(os.listdir(proc_dir)):
            p = os.path.join(proc_dir, name)
            if ".tmp" in name or not os.path.isfile(p):
                continue
            proc[name] = _read_text(p, errors="replace")
    scenario_text = None
    sp = os.path.join(d, SCENARIO)
    if os.path.isfile(sp):
        scenario_text = _read_text(sp)
    return Results(path=d, timeseries=timeseries, summary=summary, params=params, proc=proc,
                   scenario_text=scenario_text)


#: ``spbsim sweep`` directories (spbsim.sweep writes them)
SWEEP_PARQUET = "sweep.parquet"
SWEEP_JSON = "sweep.json"
PARTS = "parts"
SWEEP_FORMAT_VERSION = 1
#: after the grid columns, in this order; the flattened summary follows
META_COLUMNS = ("policy", "seed", "status", "error", "request_checksum", "wall_s", "run_wall_s",
                "cell", "worker", "worker_peak_rss_mb", "spbsim_version", "run_dir")


def ordered_frame(rows, grid_keys):
    """A DataFrame of rows with the grid, meta, then summary columns."""
    import pandas as pd
    df = pd.DataFrame(rows)
    first = list(grid_keys) + list(META_COLUMNS)
    for c in first:
        if c not in df.columns:
            df[c] = None
    rest = sorted(c for c in df.columns if c not in first)
    return df[first + rest]


def load_sweep(dir):
    """The rows of a ``spbsim sweep`` directory as a pandas DataFrame, one per
    finished run (docs/sweep.md): ``sweep.parquet`` plus any run whose part
    (``parts/<cell>.parquet``) was written after the last consolidation.
    ``df.attrs["sweep"]`` holds ``sweep.json`` (policies, seeds, grid axes)."""
    import pandas as pd

    d = os.fspath(dir)
    if not os.path.isdir(d):
        raise ResultsError(f"{d}: no such sweep directory")
    meta = _read_json(d, SWEEP_JSON, required=True)
    ver = meta.get("format_version")
    if ver != SWEEP_FORMAT_VERSION:
        raise ResultsError(f"{os.path.join(d, SWEEP_JSON)}: format_version {ver!r}; this "
                           f"spbsim reads sweeps of format_version {SWEEP_FORMAT_VERSION}")
    cells = meta.get("cells") or []
    frames = []
    have = set()
    path = os.path.join(d, SWEEP_PARQUET)
    if os.path.isfile(path):
        try:
            df = pd.read_parquet(path)
        except Exception as e:   # pyarrow raises ArrowInvalid, OSError, ...
            raise ResultsError(f"{path}: unreadable Parquet file: {e}") from None
        df = df[df["cell"].isin(cells)] if "cell" in df.columns else df.iloc[0:0]
        frames.append(df)
        have = set(df["cell"]) if "cell" in df.columns else set()
    pdir = os.path.join(d, PARTS)
    for cell in cells:
        p = os.path.join(pdir, f"{cell}.parquet")
        if cell in have or not os.path.isfile(p):
            continue
        try:
            frames.append(pd.read_parquet(p))
        except Exception:        # cut short by a kill: that run is lost, as if in flight
            continue
    grid_keys = [k for k, _ in meta.get("grid") or []]
    rows = [r for f in frames for r in f.to_dict("records")]
    order = {c: i for i, c in enumerate(cells)}
    rows.sort(key=lambda r: order.get(r.get("cell"), len(order)))
    df = ordered_frame(rows, grid_keys).reset_index(drop=True)
    df.attrs["sweep"] = meta
    return df
