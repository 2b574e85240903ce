"""How long a recording's compactions took: each mm_compaction_begin..end
pair of one task, with the pages its isolate tracepoints scanned and its
mm_compaction_migratepages events migrated, and the per-page costs read
from them, which set the [SIM] kcompactd cost (docs/model.md,
"Compaction's duration")."""
import re
import statistics

from spbsim.trace.ftrace import open_trace

__all__ = ["compactions", "costs"]

_LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(mm_compaction_\w+):\s*(.*)$")
_SCANNED = re.compile(r"nr_scanned=(\d+)")
_MIGRATED = re.compile(r"nr_migrated=(\d+)")
#: compactions that migrated fewer pages say little about the cost of one
MIN_MIGRATED = 100


def compactions(path):
    """The compactions of one trace (plain or compressed): dicts with task,
    t0 (s), dt (s), scanned, migrated and status, in the order they ended."""
    open_runs, out = {}, []
    with open_trace(path) as f:
        for line in f:
            if "mm_compaction_" not in line:
                continue
            m = _LINE.match(line)
            if m is None:
                continue
            task, pid, ts, event, rest = m.groups()
            if event == "mm_compaction_begin":
                open_runs[pid] = {"task": task, "t0": float(ts), "scanned": 0, "migrated": 0}
                continue
            run = open_runs.get(pid)
            if run is None:
                continue
            if event in ("mm_compaction_isolate_migratepages", "mm_compaction_isolate_freepages"):
                run["scanned"] += int(_SCANNED.search(rest).group(1))
            elif event == "mm_compaction_migratepages":
                run["migrated"] += int(_MIGRATED.search(rest).group(1))
            elif event == "mm_compaction_end":
                run["dt"] = float(ts) - run["t0"]
                run["status"] = rest.rsplit("status=", 1)[-1].strip()
                out.append(open_runs.pop(pid))
    return out


def costs(runs, task="kcompactd"):
    """(ns per scanned page, us per migrated page, compactions behind each)
    of the compactions of tasks named ``task``... (kcompactd's: the cost
    is kcompactd's): the median over those that migrated nothing, and over
    those that migrated MIN_MIGRATED pages or more, the scan cost taken off;
    None where no compaction qualifies."""
    runs = [r for r in runs if r["task"].startswith(task)]
    idle = [r["dt"] * 1e9 / r["scanned"] for r in runs if r["migrated"] == 0 and r["scanned"]]
    scan_ns = statistics.median(idle) if idle else None
    busy = [r for r in runs if r["migrated"] >= MIN_MIGRATED]
    mig = [(r["dt"] * 1e9 - (scan_ns or 0) * r["scanned"]) / r["migrated"] / 1e3 for r in busy]
    return scan_ns, (statistics.median(mig) if mig else None), len(idle), len(busy)
