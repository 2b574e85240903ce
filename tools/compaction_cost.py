"""Read how long a recording's compactions took, to set spbsim's [SIM]
kcompactd cost (Machine(compaction_migrate_us=, compaction_scan_ns=);
`spbsim validate --compaction-cost recorded` does this for one recording).

    python tools/compaction_cost.py TRACE [TRACE ...]      # trace.txt[.xz|.zst|.gz]

Prints per compaction (task, start, ms, scanned, migrated, status), then,
over kcompactd's compactions in all traces, the scan cost (median ns per
scanned page of those that migrated nothing) and the migration cost
(median us per migrated page, the scan cost taken off, of those that
migrated at least 100 pages).
"""
import argparse
import sys

from spbsim.trace.compaction_cost import compactions, costs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("traces", nargs="+")
    a = p.parse_args(argv)
    runs = []
    for path in a.traces:
        for r in compactions(path):
            print(f"{path}\t{r['task']}\t{r['t0']:.3f}\t{r['dt'] * 1e3:.2f} ms\t"
                  f"scanned {r['scanned']}\tmigrated {r['migrated']}\t{r['status']}")
            runs.append(r)
    scan_ns, mig_us, n_idle, n_busy = costs(runs)
    if mig_us is None:
        print("no kcompactd compaction migrated 100 pages: no cost to read", file=sys.stderr)
        return 1
    scan = "n/a" if scan_ns is None else f"{scan_ns:.0f} ns per scanned page"
    print(f"scan: {scan} (median of {n_idle}); migration: {mig_us:.1f} us per migrated page "
          f"(median of {n_busy})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
