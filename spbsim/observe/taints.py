"""Who polluted it: a run's taint log (spbsim.mm.taint) drained from the
machine, written as ``taints.parquet`` and summarised for ``summary.json``.
Events, columns and the summary keys: docs/results.md ("taints.parquet")."""
from __future__ import annotations

import os

import numpy as np

from ..mm.const import MIGRATETYPE_NAMES, ZONE_NAMES, pageblock_order
from ..mm.gfp import format_gfp, gfp_migratetype
from ..mm.spb.params import SPB_OUTCOME_NAMES
from ..mm.state import TL, TL_CAUSES, TL_EVENTS, TL_WIDTH
from ..results import TAINTS

__all__ = ["TaintLog", "BUILTIN_OWNERS"]

#: owners that are not scenario sources (machine.OWNER_EARLY_KERNEL, OWNER_API)
BUILTIN_OWNERS = {0: "(no request)", 1: "(early kernel)", 2: "(api)"}


def _pass_name(k):
    return "-" if k <= 0 else SPB_OUTCOME_NAMES[k]


class TaintLog:
    """The rows a run's compiled code logged, drained in chunks.

    ``mem``: the machine's Mem; ``owners``: {owner id: source name}.  Call
    :meth:`drain` whenever convenient (the engine does at every sample and
    when the log is half full); rows the log could not hold are counted in
    ``mem.tl_n[1]`` (``dropped``)."""

    def __init__(self, mem, owners):
        self.mem = mem
        self.owners = dict(BUILTIN_OWNERS) | {int(k): v for k, v in owners.items()}
        self.chunks = []
        self.half = mem.tl.shape[0] // 2

    def drain(self):
        n = int(self.mem.tl_n[0])
        if n:
            self.chunks.append(np.array(self.mem.tl[:n], copy=True))
            self.mem.tl_n[0] = 0

    @property
    def dropped(self):
        return int(self.mem.tl_n[1])

    def rows(self):
        """All rows so far, int64[n, TL_WIDTH] (mm.state.TL_NAMES)."""
        self.drain()
        if not self.chunks:
            return np.zeros((0, TL_WIDTH), np.int64)
        return np.concatenate(self.chunks)

    def _owner(self, o):
        return self.owners.get(int(o), f"owner {int(o)}")

    def table(self):
        """The log as a pyarrow Table (one row per event, in log order)."""
        import pyarrow as pa
        r = self.rows()
        ev = r[:, TL["event"]]
        idx = r[:, TL["index"]]
        is_pb = ev <= 1
        spb = self.mem.spb
        spb_pfn = np.asarray(spb.start_pfn)
        pfn = np.where(is_pb, idx << pageblock_order,
                       spb_pfn[np.clip(idx, 0, max(len(spb_pfn) - 1, 0))] if len(spb_pfn) else 0)

        def dict_col(codes, names):
            names = list(names)
            return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(names))

        gfp = r[:, TL["gfp"]]
        owners = sorted(set(int(o) for o in r[:, TL["owner"]]) | {-1})
        oname = [("-" if o < 0 else self._owner(o)) for o in owners]
        ocode = np.searchsorted(owners, r[:, TL["owner"]])
        mt = r[:, TL["migratetype"]].copy()
        mt = np.where((mt < 0) & (ev >= 2), gfp_migratetype(gfp), mt)   # SPB rows: the request's
        mt_names = list(MIGRATETYPE_NAMES) + ["-"]
        fb = r[:, TL["fallback_migratetype"]]
        cause = r[:, TL["cause"]]
        passes = r[:, TL["spb_pass"]]
        gfps = sorted(set(int(g) for g in gfp))
        return pa.table({
            "t_s": pa.array(r[:, TL["t_ns"]] / 1e9, pa.float64()),
            "event": dict_col(ev, TL_EVENTS),
            "pageblock_or_spb": pa.array(idx, pa.int64()),
            "pfn": pa.array(pfn, pa.int64()),
            "zone": dict_col(r[:, TL["zone"]], ZONE_NAMES),
            "source": dict_col(ocode, oname),
            "gfp": dict_col(np.searchsorted(gfps, gfp), [format_gfp(g) for g in gfps]),
            "order": pa.array(r[:, TL["order"]], pa.int8()),
            "migratetype": dict_col(np.where(mt < 0, len(mt_names) - 1, mt), mt_names),
            "fallback_migratetype": dict_col(np.where(fb < 0, len(mt_names) - 1, fb), mt_names),
            "cause": dict_col(np.where(cause < 0, len(TL_CAUSES), cause), list(TL_CAUSES) + ["-"]),
            "spb_pass": dict_col(passes, [_pass_name(k) for k in range(len(SPB_OUTCOME_NAMES))]),
        })

    def write(self, out_dir):
        """Write ``out_dir/taints.parquet`` (atomically); returns its path."""
        import pyarrow.parquet as pq
        path = os.path.join(os.fspath(out_dir), TAINTS)
        tmp = path + f".tmp.{os.getpid()}"
        pq.write_table(self.table(), tmp)
        os.replace(tmp, path)
        return path

    def summary(self):
        """Counts for summary.json: events, pollution and taints by source,
        cause and pass, the blocks polluted now by the source that polluted
        them first, and rows dropped."""
        r = self.rows()
        ev = r[:, TL["event"]]
        out = {"events": {name: int((ev == k).sum()) for k, name in enumerate(TL_EVENTS)},
               "dropped": self.dropped,
               "owners": {str(k): v for k, v in sorted(self.owners.items())}}

        def count(mask, col, name_of):
            vals, n = np.unique(r[mask, TL[col]], return_counts=True)
            items = sorted(((name_of(v), int(c)) for v, c in zip(vals, n)), key=lambda kv: -kv[1])
            return dict(items)

        pol = ev == 0
        out["pageblocks_polluted_by_source"] = count(pol, "owner", self._owner)
        out["pageblocks_polluted_by_cause"] = count(pol, "cause", lambda c: TL_CAUSES[int(c)])
        tnt = ev == 2
        out["spbs_tainted_by_source"] = count(tnt, "owner", self._owner)
        out["spbs_tainted_by_pass"] = count(tnt, "spb_pass", _pass_name)
        now = np.asarray(self.mem.pb_taint)
        vals, n = np.unique(now[now > 0], return_counts=True)
        out["polluted_now_by_source"] = dict(sorted(((self._owner(v - 1), int(c))
                                                     for v, c in zip(vals, n)),
                                                    key=lambda kv: -kv[1]))
        return out
