"""When the recorded kswapd was reclaiming: the windows in which the kernel's
zones carried ZONE_RECLAIM_ACTIVE (mm/vmscan.c set_reclaim_active() at the
start of balance_pgdat(), clear_reclaim_active() at its end), read from a
trace so that a what-if replay, whose reclaim is the stream's, caps the
per-cpu lists (nr_pcp_high()) exactly while the kernel's kswapd ran.
"""
import numpy as np

from spbsim.trace.ftrace import KMEM_KINDS, OTHER_EVENT

__all__ = ["KswapdScan", "window_cuts", "active_at", "KSWAPD_GAP_MS"]

#: [SIM] a pause of the kswapd task's kmem events at least this long ends a
#: window: inside one balance_pgdat() run the gaps stay below 20 ms on the
#: recordings (run1: 26 of 1.1 M gaps between 20 and 100 ms), between runs
#: kswapd naps HZ/10 in kswapd_try_to_sleep() before it sleeps
KSWAPD_GAP_MS = 50

_WAKE = "mm_vmscan_kswapd_wake"


class KswapdScan:
    """Collects, batch by batch, the times of the kmem events of kswapd tasks
    (``kswapdN`` in the task name; the pages they free are kswapd's reclaim)
    and of the ``mm_vmscan_kswapd_wake`` tracepoints (the start of each
    balance_pgdat() run) when the recording has them."""

    def __init__(self):
        self._is_kswapd = []
        self._times = []
        self._wakes = []

    def add(self, batch):
        ev = batch.events
        for cid in range(len(self._is_kswapd), len(batch.comms)):
            self._is_kswapd.append(batch.comms[cid].startswith("kswapd"))
        if not len(ev) or not any(self._is_kswapd):
            return
        ks = np.asarray(self._is_kswapd, bool)[ev["comm"]]
        kmem = np.isin(ev["kind"], list(KMEM_KINDS))
        self._times.append(ev["ts"][ks & kmem])
        for j in np.flatnonzero(ks & (ev["kind"] == OTHER_EVENT)).tolist():
            rec = batch.records[int(ev["aux"][j])]
            if getattr(rec, "event", "") == _WAKE:
                self._wakes.append(float(rec.ts))

    def windows(self, gap_ms=KSWAPD_GAP_MS) -> np.ndarray:
        """[n, 2] int64 (start, end) in trace ns: maximal runs of kswapd kmem
        events without a pause of ``gap_ms``; a window starts at the last
        kswapd wake tracepoint between the previous window and its first
        event, when there is one (balance_pgdat() scans before it frees)."""
        t = np.concatenate(self._times) if self._times else np.zeros(0)
        t = np.sort(t[np.isfinite(t)])
        if not len(t):
            return np.zeros((0, 2), np.int64)
        brk = np.flatnonzero(np.diff(t) >= gap_ms / 1000.0)
        first = np.concatenate([[0], brk + 1])
        last = np.concatenate([brk, [len(t) - 1]])
        start, end = t[first].copy(), t[last]
        if self._wakes:
            w = np.sort(np.asarray(self._wakes))
            prev_end = np.concatenate([[-np.inf], end[:-1]])
            k = np.searchsorted(w, start, "right") - 1          # last wake <= first event
            ok = k >= 0
            ok[ok] = w[k[ok]] > prev_end[ok]
            start[ok] = w[k[ok]]
        return np.stack([np.round(start * 1e9), np.round(end * 1e9)], 1).astype(np.int64)


def active_at(windows, ts_ns) -> bool:
    """Was kswapd reclaiming at trace time ``ts_ns``?"""
    i = int(np.searchsorted(windows[:, 0], ts_ns, "right")) - 1
    return i >= 0 and ts_ns <= windows[i, 1]


def window_cuts(windows, ts) -> list:
    """Cuts [(op index, {"reclaim_active": bool})] for a chunk whose ops have
    the (non-decreasing) trace times ``ts`` in ns: on before the first op at
    or after a window's start, off after the last op at or before its end."""
    if not len(ts) or not len(windows):
        return []
    lo, hi = int(ts[0]), int(ts[-1])
    out = []
    for s, e in windows[(windows[:, 1] >= lo) & (windows[:, 0] <= hi)].tolist():
        if s >= lo:
            out.append((int(np.searchsorted(ts, s, "left")), {"reclaim_active": True}))
        if e <= hi:
            out.append((int(np.searchsorted(ts, e, "right")), {"reclaim_active": False}))
    return out
