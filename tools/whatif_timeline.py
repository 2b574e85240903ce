"""A window of a recording's what-if replay, step by step: per zone the
simulated free pages (in the buddy), per-cpu list pages and free 2 MB units
(in blocks of order >= 9), and the node's fragmentation score (fragmentation_score_node(),
the number kcompactd's proactive compaction compares with its marks); at each
snapshot marker the kernel's own values beside them.

    python tools/whatif_timeline.py RECORDING --from 29 --to 38 [--every 0.1]
"""
import argparse
import sys

import numpy as np

from spbsim import Machine
from spbsim.errors import SpbsimError
from spbsim.mm.const import pageblock_order
from spbsim.mm.state import ZSTAT
from spbsim.observe.procfs import extfrag_for_order
from spbsim.trace.validate import _read, _real_side, open_recording, recorded_machine
from spbsim.trace.whatif import free_pages_blocks_ge, replay_whatif


def node_score(zones, present):
    """fragmentation_score_node(): each zone's extfrag_for_order(zone,
    COMPACTION_HPAGE_ORDER) weighted by its present pages."""
    total = sum(present.values())
    return sum(present[z] * extfrag_for_order(list(v), pageblock_order) // (total + 1)
               for z, v in zones.items())


def _cells(names, free, pcp, units):
    return "  ".join(f"{n}: {free[n]:7d} / {pcp[n]:5d} / {units[n]:3d}" for n in names)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recording")
    p.add_argument("--from", dest="t0", type=float, required=True, help="trace seconds")
    p.add_argument("--to", dest="t1", type=float, required=True, help="trace seconds")
    p.add_argument("--every", type=float, default=0.1, help="step in seconds (default 0.1)")
    a = p.parse_args(argv)
    if a.t1 <= a.t0 or a.every <= 0:
        p.error("--to must be after --from, --every above 0")
    try:
        _timeline(a)
    except SpbsimError as e:        # bad input: one line, as spbsim's commands say it
        print(f"whatif_timeline: {e}", file=sys.stderr)
        return 2
    return 0


def _timeline(a):
    rec = open_recording(a.recording)
    rm = recorded_machine(rec)
    machine = Machine(**rm.machine_kwargs)
    r = replay_whatif(rec.trace, machine, snapshots_dir=rec.snapshots_dir,
                      pfn_ranges=rm.pfn_ranges(), trace_cpus=rm.cpu_ids,
                      snapshot_every_s=a.every)
    names = machine.zone_names()
    present = {n: int(machine.mem.zstat[z, ZSTAT["present"]])
               for n, z in zip(names, machine.populated_zones())}
    snaps = {s["tag"]: s for s in rec.index}
    print("t (s)    snapshot        score  " + "  ".join(
        f"{n}: free / pcp / >=9" for n in names))
    for s in r["snapshots"]:
        t = s.get("ts")
        if t is None or not a.t0 <= t <= a.t1:
            continue
        z = s["zones"]
        tag = s.get("tag") or ""
        print(f"{t:8.2f} {tag:14s} {node_score({n: z[n]['nr_free'] for n in names}, present):5d}"
              f"  " + _cells(names, {n: z[n]["free_pages"] for n in names},
                             {n: z[n]["pcp_pages"] for n in names},
                             {n: z[n]["blocks_ge9"] for n in names}))
        if tag in snaps:
            # the kernel's, read as `spbsim validate` reads them
            nr, _, pcp, _ = _real_side(snaps[tag], names)
            zi = _read(snaps[tag], "zoneinfo") or {}
            rp = {n: int(zi.get(n, {}).get("present", 0)) or present[n] for n in names}
            pages, units = free_pages_blocks_ge(np.array([nr[n] for n in names]))
            print(f"{'':8s} {'  kernel':14s} {node_score({n: nr[n] for n in names}, rp):5d}  "
                  + _cells(names, dict(zip(names, pages.tolist())),
                           {n: pcp.get(n, 0) for n in names}, dict(zip(names, units.tolist()))))


if __name__ == "__main__":
    sys.exit(main())
