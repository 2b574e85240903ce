"""A window of a recording's what-if replay, step by step: per zone the
simulated free pages (in the buddy), per-cpu list pages and free blocks of
order >= 9, and the node's fragmentation score (fragmentation_score_node(),
the number kcompactd's proactive compaction compares with its marks); at each
snapshot marker the kernel's own values beside them.

    python tools/whatif_timeline.py RECORDING --from 29 --to 38 [--every 0.1]
"""
import argparse
import os
import re
import sys

import numpy as np

from spbsim.errors import SpbsimError
from spbsim.mm.const import pageblock_order
from spbsim.mm.state import ZSTAT
from spbsim.trace.validate import open_recording, recorded_machine
from spbsim.trace.whatif import replay_whatif


def zone_score(nr_free):
    """extfrag_for_order(zone, COMPACTION_HPAGE_ORDER): the share of free
    pages not in blocks of order >= 9, in percent, rounded down."""
    nr = np.asarray(nr_free, np.int64)
    free = int((nr << np.arange(len(nr))).sum())
    if free == 0:
        return 0
    suitable = int(sum(int(nr[o]) << (o - pageblock_order) for o in range(pageblock_order, len(nr))))
    return (free - (suitable << pageblock_order)) * 100 // free


def node_score(zones, present):
    """fragmentation_score_node(): zone scores weighted by present pages."""
    total = sum(present.values())
    return sum(present[z] * zone_score(v) // (total + 1) for z, v in zones.items())


def real_zones(snap_dir):
    """{zone: (nr_free by order, present pages, pcp pages)} from a snapshot's
    buddyinfo and zoneinfo."""
    out = {}
    with open(os.path.join(snap_dir, "buddyinfo")) as f:
        for line in f:
            m = re.match(r"Node \d+, zone\s+(\S+)\s+(.*)", line)
            if m:
                out[m.group(1)] = [[int(x) for x in m.group(2).split()], 0, 0]
    zi = os.path.join(snap_dir, "zoneinfo")
    if os.path.exists(zi):
        with open(zi) as f:
            text = f.read()
        for part in re.split(r"(?=Node \d+, zone)", text):
            m = re.match(r"Node \d+, zone\s+(\S+)", part)
            if m and m.group(1) in out:
                p = re.search(r"present\s+(\d+)", part)
                out[m.group(1)][1] = int(p.group(1)) if p else 0
                out[m.group(1)][2] = sum(int(c) for c in re.findall(r"count:\s+(\d+)", part))
    return out


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
        rec = open_recording(a.recording)
        rm = recorded_machine(rec)
    except SpbsimError as e:
        print(f"whatif_timeline: {e}", file=sys.stderr)
        return 2
    from spbsim.machine import Machine
    machine = Machine(**rm.machine_kwargs)
    r = replay_whatif(rec.trace, machine, snapshots_dir=rec.snapshots_dir,
                      pfn_ranges=rm.pfn_ranges(), trace_cpus=rm.cpu_ids,
                      snapshot_every_s=a.every)
    names = machine.zone_names()
    present = {n: int(machine.mem.zstat[z, ZSTAT["present"]])
               for n, z in zip(names, machine.populated_zones())}
    dirs = {s["tag"]: s["dir"] for s in rec.index}
    print("t (s)    snapshot        score  " + "  ".join(
        f"{n}: free / pcp / >=9" for n in names))
    for s in r["snapshots"]:
        t = s.get("ts")
        if t is None or not a.t0 <= t <= a.t1:
            continue
        z = s["zones"]
        sim = {n: z[n]["nr_free"] for n in names}
        cells = "  ".join(f"{n}: {z[n]['free_pages']:7d} / {z[n]['pcp_pages']:5d} / "
                          f"{z[n]['blocks_ge9']:3d}" for n in names)
        tag = s.get("tag") or ""
        print(f"{t:8.2f} {tag:14s} {node_score(sim, present):5d}  {cells}")
        if tag in dirs and not tag.startswith("t="):
            real = real_zones(dirs[tag])
            rz = {n: real[n][0] for n in names if n in real}
            rp = {n: real[n][1] or present[n] for n in rz}
            cells = "  ".join(
                f"{n}: {int((np.asarray(v) << np.arange(len(v))).sum()):7d} / "
                f"{real[n][2]:5d} / {sum(int(c) << (o - pageblock_order) for o, c in enumerate(v) if o >= pageblock_order):3d}"
                for n, v in rz.items())
            print(f"{'':8s} {'  kernel':14s} {node_score(rz, rp):5d}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
