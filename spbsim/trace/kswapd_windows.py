"""When the recorded kswapd was reclaiming: the windows in which the kernel's
zones carried ZONE_RECLAIM_ACTIVE (mm/vmscan.c set_reclaim_active() at the
start of balance_pgdat(), clear_reclaim_active() at its end), read from a
trace so that a what-if replay, whose reclaim is the stream's, caps the
per-cpu lists (nr_pcp_high()) exactly while the kernel's kswapd ran; and
the naps before its sleeps, where kswapd_try_to_sleep() wakes kcompactd.
"""
import numpy as np

from spbsim.mm.const import MAX_PAGE_ORDER, NEVER_NS
from spbsim.trace.ftrace import KMEM_KINDS, OTHER_EVENT, TraceFormatError

__all__ = ["KSWAPD_GAP_MS", "KSWAPD_NAP_MS", "NEVER_NS", "KswapdScan", "NapCursor", "active_at",
           "next_wake", "window_cuts"]

#: [SIM] a pause of the kswapd task's kmem events at least this long ends a
#: window: inside one balance_pgdat() run the gaps stay below 20 ms on the
#: recordings (run1: 26 of 1.1 M gaps between 20 and 100 ms), between runs
#: kswapd naps HZ/10 in kswapd_try_to_sleep() before it sleeps
KSWAPD_GAP_MS = 50

#: kswapd_try_to_sleep() naps schedule_timeout(HZ/10) once the node is
#: balanced, then traces mm_vmscan_kswapd_sleep: balance_pgdat() ended that
#: long before the sleep tracepoint (the recordings: 99-254 ms after
#: kswapd's last kmem event)
KSWAPD_NAP_MS = 100

_WAKE = "mm_vmscan_kswapd_wake"
_SLEEP = "mm_vmscan_kswapd_sleep"
_KCD_WAKE = "mm_compaction_wakeup_kcompactd"


class KswapdScan:
    """Collects, batch by batch, the times of the kmem events of kswapd tasks
    (``kswapdN`` in the task name; the pages they free are kswapd's reclaim)
    and of the ``mm_vmscan_kswapd_wake`` tracepoints (the start of each
    balance_pgdat() run), ``mm_vmscan_kswapd_sleep`` and, traced in kswapd's
    context, ``mm_compaction_wakeup_kcompactd`` tracepoints when the
    recording has them.  ``filename`` names the trace in the one-line error
    for a wake tracepoint whose ``order`` is not an order (with ``lenient``,
    that wake counts as order 0)."""

    def __init__(self, filename="<trace>", lenient=False):
        self.filename, self.lenient = str(filename), lenient
        self._is_kswapd = []
        self._times = []
        self._wakes = []
        self._wake_orders = []
        self._sleeps = []
        self._kcd_wakes = []
        self._kcd_orders = []

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
            name = getattr(rec, "event", "")
            if name == _WAKE:
                self._wakes.append(float(rec.ts))
                self._wake_orders.append(self._wake_order(rec))
            elif name == _SLEEP:
                self._sleeps.append(float(rec.ts))
            elif name == _KCD_WAKE:
                self._kcd_wakes.append(float(rec.ts))
                self._kcd_orders.append(self._wake_order(rec, _KCD_WAKE))

    @property
    def kcompactd_wakes_traced(self) -> int:
        """How many mm_compaction_wakeup_kcompactd kswapd traced."""
        return len(self._kcd_wakes)

    def _wake_order(self, rec, event=_WAKE):
        order = rec.args.get("order", 0)
        if isinstance(order, int) and 0 <= order <= MAX_PAGE_ORDER:
            return order
        if self.lenient:
            return 0
        raise TraceFormatError(self.filename, rec.line, event, "order",
                               f"{order!r} is not an order 0..{MAX_PAGE_ORDER}")

    def _marks(self):
        """The wake (kind 0, with its order), sleep (kind 1) and kcompactd
        wake-up (kind 2, with its order) tracepoints, as (s, kind, order) in
        time order."""
        return sorted([(w, 0, o) for w, o in zip(self._wakes, self._wake_orders)]
                      + [(s, 1, 0) for s in self._sleeps]
                      + [(k, 2, o) for k, o in zip(self._kcd_wakes, self._kcd_orders)])

    def _quiet_runs(self, t):
        """(start, end) in s of the balance_pgdat() runs that freed nothing: a
        wake followed by a sleep, no wake and no kswapd kmem event (in the
        sorted times ``t``) between them; the run set ZONE_RECLAIM_ACTIVE all
        the same and ended KSWAPD_NAP_MS before the sleep tracepoint."""
        if not self._wakes or not self._sleeps:
            return np.zeros((0, 2))
        marks = [mk for mk in self._marks() if mk[1] != 2]
        out = []
        for (a, ka, _), (b, kb, _) in zip(marks, marks[1:]):
            end = b - KSWAPD_NAP_MS / 1000.0
            if ka == 0 and kb == 1 and end > a and \
                    np.searchsorted(t, a, "left") == np.searchsorted(t, b, "right"):
                out.append((a, end))
        return np.asarray(out, float).reshape(-1, 2)

    def naps(self, traced=False) -> np.ndarray:
        """[n, 3] int64 (trace ns, order, nap), sorted: where the recorded
        kswapd woke kcompactd and cleared the skip bits; with ``traced`` a
        fourth column, 1 where the row's order is that of a traced
        mm_compaction_wakeup_kcompactd (the kernel woke kcompactd), 0 where
        it is the last wake tracepoint's (it did not).
        kswapd_try_to_sleep(), once the node is balanced, clears the
        compaction skip bits a direct compaction asked it to
        (reset_isolation_suitable()) and calls wakeup_kcompactd(pgdat,
        alloc_order, highest_zoneidx), then naps HZ/10 and traces
        mm_vmscan_kswapd_sleep: so one row with ``nap`` 1 per sleep
        tracepoint, at KSWAPD_NAP_MS before it (not before the run's wake);
        a sleep without a wake since the previous one gives none.  Its order
        is the largest of the kcompactd wake-ups kswapd traced
        (mm_compaction_wakeup_kcompactd) since the previous sleep, and, where
        none was traced, that of the last wake tracepoint (the tracepoint
        fires only where kcompactd sleeps and a zone suits it).  alloc_order
        is the wake's order where balance_pgdat() dropped to order 0 after
        compact_gap() pages; else the largest order wakeup_kswapd() asked
        while kswapd ran, which no tracepoint shows; and a run that began
        with boosted watermarks wakes kcompactd for pageblock_order as it
        ends (balance_pgdat()), just before the nap.  A kcompactd wake-up
        traced in a run that did not end in a sleep (woken again during the
        nap, or not balanced) is a row of its own with ``nap`` 0, at its
        time.  A nap cut short by a new wake-up leaves no sleep tracepoint
        and is not counted."""
        out = []
        last = None                         # (ts, order) of the last wake since a sleep
        kcd = []                            # kcompactd wake-ups (ts, order) since then
        for t, kind, order in self._marks() + [(np.inf, 0, 0)]:
            if kind == 2:
                kcd.append((t, order))
                continue
            if kind == 1 and last is not None:
                o = max(o for _, o in kcd) if kcd else last[1]
                out.append((max(last[0], t - KSWAPD_NAP_MS / 1000.0), o, 1, int(bool(kcd))))
            else:                           # no nap followed them: rows of their own
                out += [(k, o, 0, 1) for k, o in kcd]
            kcd = []
            last = (t, order) if kind == 0 else None
        ncol = 4 if traced else 3
        if not out:
            return np.zeros((0, ncol), np.int64)
        a = np.asarray(sorted(out), float)
        return np.stack([np.round(a[:, 0] * 1e9), a[:, 1], a[:, 2], a[:, 3]][:ncol],
                        1).astype(np.int64)

    def windows(self, gap_ms=KSWAPD_GAP_MS) -> np.ndarray:
        """[n, 2] int64 (start, end) in trace ns, sorted: maximal runs of
        kswapd kmem events without a pause of ``gap_ms``; a window starts at
        the last kswapd wake tracepoint between the previous window and its
        first event, when there is one (balance_pgdat() scans before it
        frees); and the runs that freed nothing (_quiet_runs)."""
        t = np.concatenate(self._times) if self._times else np.zeros(0)
        t = np.sort(t[np.isfinite(t)])
        quiet = self._quiet_runs(t)
        if not len(t):
            return np.round(quiet * 1e9).astype(np.int64)
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
        win = np.concatenate([np.stack([start, end], 1), quiet])
        win = win[np.argsort(win[:, 0], kind="stable")]
        merged = [list(win[0])]
        for a, b in win[1:].tolist():
            if a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return np.round(np.asarray(merged) * 1e9).astype(np.int64)


def next_wake(windows, ts_ns) -> int:
    """When the recorded kswapd is (or was, if reclaiming at ``ts_ns``) woken
    next: the start of the first window that has not ended by ``ts_ns``."""
    i = int(np.searchsorted(windows[:, 1], ts_ns, "left"))
    return int(windows[i, 0]) if i < len(windows) else NEVER_NS


def active_at(windows, ts_ns) -> bool:
    """Was kswapd reclaiming at trace time ``ts_ns``?"""
    i = int(np.searchsorted(windows[:, 0], ts_ns, "right")) - 1
    return i >= 0 and ts_ns <= windows[i, 1]


def window_cuts(windows, ts) -> list:
    """Cuts [(op index, {"reclaim_active": bool, "next_wake": ns})] for a
    chunk whose ops have the (non-decreasing) trace times ``ts`` in ns: on
    before the first op at or after a window's start, off after the last op
    at or before its end; ``next_wake`` is that window's start (on) or the
    next window's (off)."""
    if not len(ts) or not len(windows):
        return []
    lo, hi = int(ts[0]), int(ts[-1])
    out = []
    starts = windows[:, 0].tolist() + [NEVER_NS]
    for i in np.flatnonzero((windows[:, 1] >= lo) & (windows[:, 0] <= hi)).tolist():
        s, e = int(windows[i, 0]), int(windows[i, 1])
        if s >= lo:
            out.append((int(np.searchsorted(ts, s, "left")),
                        {"reclaim_active": True, "next_wake": s}))
        if e <= hi:
            out.append((int(np.searchsorted(ts, e, "right")),
                        {"reclaim_active": False, "next_wake": int(starts[i + 1])}))
    return out


class NapCursor:
    """Cuts for the recorded kswapd's naps (KswapdScan.naps), chunk after
    chunk in trace order: each nap once, in the first chunk whose last op is
    at or after it, before the first op after it (index 0 when it fell
    between two chunks).  ``kcompactd_wakes`` counts the rows the replay
    applied with an order above 0."""

    def __init__(self, naps):
        self.naps = naps
        self.i = 0
        self.kcompactd_wakes = 0

    def cuts(self, ts) -> list:
        """[(op index, {"kcompactd_wake": order, "nap": bool})] for a chunk
        whose ops have the (non-decreasing) trace times ``ts`` in ns."""
        if not len(ts):
            return []
        j = int(np.searchsorted(self.naps[:, 0], int(ts[-1]), "right"))
        out = [(int(np.searchsorted(ts, t, "right")), {"kcompactd_wake": int(o), "nap": bool(n)})
               for t, o, n in self.naps[self.i:j].tolist()]
        self.i = max(self.i, j)
        return out
