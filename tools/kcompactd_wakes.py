"""kcompactd's wake-up decisions on the kernel's own state: at each nap of the
recorded kswapd (kswapd_try_to_sleep() calls wakeup_kcompactd(pgdat,
alloc_order, ...)) and at each kcompactd wake-up kswapd traced outside one,
whether the model's kcompactd_node_suitable() would wake kcompactd for that
order, asked on the placement replay's state (the kernel's free lists as the
trace tells them), against whether the kernel traced the wake-up
(mm_compaction_wakeup_kcompactd fires only where a zone suits kcompactd).

    python tools/kcompactd_wakes.py RECORDING [--all]
"""
import argparse
import sys

import numpy as np

from spbsim.errors import SpbsimError
from spbsim.mm import compaction as C
from spbsim.mm.const import MAX_NR_ZONES, MIGRATE_MOVABLE, ZONE_NAMES
from spbsim.mm.state import NODE, ZS_NR_FREE
from spbsim.mm.watermark import wmark_pages
from spbsim.trace.ftrace import TraceReader
from spbsim.trace.kswapd_windows import KswapdScan
from spbsim.trace.replay import PlacementReplay, replay_placement
from spbsim.trace.validate import open_recording

_ORDER = NODE["kcompactd_max_order"]
_IDX = NODE["kcompactd_highest_zoneidx"]


def model_decision(m, order, idx=MAX_NR_ZONES - 1):
    """(kcompactd_node_suitable() for ``order``, per populated zone up to
    ``idx``: (zone, MIN mark met for the order, compaction_suitable(), free
    pages)); kcompactd's pending order and index are left as they were."""
    saved = int(m.node[_ORDER]), int(m.node[_IDX])
    m.node[_ORDER], m.node[_IDX] = order, idx
    try:
        woke = bool(C.kcompactd_node_suitable(m))
        zones = [(z, bool(C.compaction_wmark_ok(m, z, order, MIGRATE_MOVABLE,
                                                 wmark_pages(m, z, 0), idx, 0)),
                  bool(C.compaction_suitable(m, z, order, idx)), int(m.zstat[z, ZS_NR_FREE]))
                 for z in range(idx + 1) if C.populated_zone(m, z)]
    finally:
        m.node[_ORDER], m.node[_IDX] = saved
    return woke, zones


def wake_rows(trace, lenient=False):
    """KswapdScan.naps(traced=True) of the trace, order > 0 only."""
    scan = KswapdScan(trace, lenient)
    for batch in TraceReader(trace, lenient=lenient, keep_other=True).batches():
        scan.add(batch)
    rows = scan.naps(traced=True)
    return rows[rows[:, 1] > 0], scan.kcompactd_wakes_traced


def decisions(path, lenient=False):
    """[(t s, order, nap, kernel woke, model woke, zones)] for a recording."""
    rec = open_recording(path)
    rows, traced = wake_rows(rec.trace, lenient)
    todo = [(r[0] / 1e9, int(r[1]), int(r[2]), bool(r[3])) for r in rows]
    out = []

    class Rep(PlacementReplay):
        begun = False

        def apply(self, ops, mode=0, lo=0, hi=None):
            hi = len(ops) if hi is None else hi
            ts = self.times
            if not self.begun and len(ts) > lo and hi > lo:
                # the replay starts at the start snapshot: earlier rows have no state
                self.begun = True
                while todo and todo[0][0] < ts[lo]:
                    todo.pop(0)
            while todo and lo < hi and len(ts) >= hi and ts[hi - 1] >= todo[0][0]:
                cut = lo + int(np.searchsorted(ts[lo:hi], todo[0][0]))
                if cut > lo:
                    super().apply(ops, mode, lo, cut)
                    lo = cut
                t, order, nap, kernel = todo.pop(0)
                woke, zones = model_decision(self.machine.mem, order)
                out.append((t, order, nap, kernel, woke, zones))
            if hi > lo:
                super().apply(ops, mode, lo, hi)

    holder = {}

    def factory(machine):
        holder["rep"] = Rep(machine)
        return holder["rep"]

    replay_placement(rec.trace, rec.snapshots_dir, lenient=lenient, compare_tags=(),
                     replay_factory=factory)
    for t, order, nap, kernel in todo:      # after the last event: the final state
        woke, zones = model_decision(holder["rep"].machine.mem, order)
        out.append((t, order, nap, kernel, woke, zones))
    return out, traced


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording")
    p.add_argument("--all", action="store_true", help="print every row, not only disagreements")
    p.add_argument("--lenient", action="store_true")
    a = p.parse_args(argv)
    try:
        out, traced = decisions(a.recording, a.lenient)
    except SpbsimError as e:
        print(f"kcompactd_wakes: {e}", file=sys.stderr)
        return 2
    if not traced:
        print("note: the trace holds no mm_compaction_wakeup_kcompactd event (was the "
              "tracepoint enabled?): 'kernel' reads no wake-up everywhere")
    agree = sum(k == w for _, _, _, k, w, _ in out)
    print(f"{len(out)} kcompactd wake-up requests of order > 0 by the recorded kswapd; the "
          f"model's kcompactd_node_suitable() on the kernel's state agrees on {agree}")
    print("kernel woke / model would wake, per order: " + ", ".join(
        f"order {o}: {sum(k for _, oo, _, k, _, _ in out if oo == o)} / "
        f"{sum(w for _, oo, _, _, w, _ in out if oo == o)} of "
        f"{sum(oo == o for _, oo, *_ in out)}" for o in sorted({r[1] for r in out})))
    for t, order, nap, kernel, woke, zones in out:
        if a.all or kernel != woke:
            cells = "  ".join(f"{ZONE_NAMES[z]} {'mark met' if ok else 'below mark'}, "
                              f"{'suits' if su else 'does not suit'} ({free} free)"
                              for z, ok, su, free in zones)
            print(f"{t:10.3f} s  order {order}  {'nap' if nap else 'run'}  kernel "
                  f"{'woke' if kernel else 'no wake'}  model {'woke' if woke else 'no wake'}"
                  f"  |  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
