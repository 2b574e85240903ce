#!/usr/bin/env python3
"""check.py - verify recordings made with the capture kit.

For each recording folder: manifest.json's trace.complete must be true (no
ring-buffer overrun or dropped event), and at the `start` and `end`
snapshots the free blocks decoded from kpageflags (the kit's
oracle_reader.kpageflags_free_blocks) must agree with /proc/buddyinfo per
zone.  A snapshot reads its files one after another while the system runs
(buddyinfo first, kpageflags last), so a small difference can be real
activity: agreement means equal, or differing by at most --tolerance of the
zone's present pages (run1-mixed-s1's start DMA32 differs by 0.23%).
Prints one line per check; exits 1 if any check fails.

usage: check.py --kit CAPTURE_KIT_DIR RECORDING_DIR...
"""
import argparse
import collections
import json
import os
import sys


def check(reader, rec, tolerance):
    man = json.load(open(os.path.join(rec, "manifest.json")))
    ok = True
    tr = man["trace"]
    print("%s: kernel %s, %d lines, complete=%s" % (man["run"], man["kernel"]["release"],
                                                     tr["lines"], tr["complete"]))
    ok &= bool(tr["complete"])
    nord = man["kernel"]["NR_PAGE_ORDERS"]
    zones = {z["zone"]: (z["start_pfn"], z["start_pfn"] + z["spanned"])
             for z in man["machine"]["zones"]}
    present = {z["zone"]: z["present"] for z in man["machine"]["zones"]}
    for seq, tag, d in reader.snapshots(rec):
        if tag not in ("start", "end"):
            continue
        blocks = reader.kpageflags_free_blocks(os.path.join(d, "kpageflags.bin.xz"), nord - 1)
        per = collections.defaultdict(lambda: [0] * nord)
        for pfn, o in blocks:
            for zn, (a, b) in zones.items():
                if a <= pfn < b:
                    per[zn][o] += 1
        bi = reader.read_buddyinfo(open(os.path.join(d, "buddyinfo")).read())
        for (_node, zn), counts in sorted(bi.items()):
            diff = sum(abs(b - k) << o for o, (b, k) in enumerate(zip(counts, per[zn])))
            good = diff <= tolerance * present[zn]
            ok &= good
            if diff == 0:
                print("  %-5s %-7s kpageflags == buddyinfo" % (tag, zn))
            else:
                print("  %-5s %-7s %s: differ by %d pages (%.2f%% of present): buddyinfo %s "
                      "kpageflags %s" % (tag, zn, "ok" if good else "MISMATCH", diff,
                                         100.0 * diff / present[zn], counts, per[zn]))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kit", required=True)
    ap.add_argument("--tolerance", type=float, default=0.01,
                    help="allowed difference, fraction of the zone's present pages")
    ap.add_argument("recordings", nargs="+")
    a = ap.parse_args()
    sys.path.insert(0, a.kit)
    import oracle_reader
    ok = True
    for rec in a.recordings:
        ok &= check(oracle_reader, rec, a.tolerance)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
