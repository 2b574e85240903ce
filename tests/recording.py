"""A tiny synthetic recording in the layout `spbsim record` writes (and
../shared/oracle/run1-mixed-s1 has): trace.txt, snapshots/index.tsv with one
folder of /proc files per snapshot, manifest.json and facts/.

The machine: 2 CPUs, 512 MiB below 4 GiB and 512 MiB above (zones DMA,
DMA32, Normal with x86_64 spans), a 6.12 kernel.  The trace holds a few
hundred order-0 allocations and frees in Normal between snapshot markers.
"""
import json
from pathlib import Path

import numpy as np

from spbsim.observe import procfs

#: name -> (start_pfn, spanned, present, managed)
ZONES = {"DMA": (1, 4095, 3998, 3840),
         "DMA32": (4096, 1044480, 126938, 120000),
         "Normal": (0x100000, 131072, 131072, 128000)}
#: pageblocks per migratetype (Unmovable, Movable, Reclaimable, HighAtomic, Isolate)
BLOCKS = {"DMA": [1, 7, 0, 0, 0], "DMA32": [10, 230, 8, 0, 0], "Normal": [5, 245, 6, 0, 0]}
#: per-cpu list pages per zone and cpu
PCP = {"DMA": [0, 0], "DMA32": [31, 62], "Normal": [100, 50]}
TAGS = ("start", "periodic-0001", "end")
MIN_FREE_KBYTES = 16384

_ALLOC = ("            init-1       [{cpu:03d}] .....    {ts:.6f}: mm_page_alloc: "
          "page=00000000af3f5202 pfn={pfn:#x} order={order} migratetype=1 "
          "gfp_flags=GFP_HIGHUSER_MOVABLE")
_FREE = ("             cut-218     [{cpu:03d}] .....    {ts:.6f}: mm_page_free: "
         "page=000000004a2ad7d2 pfn={pfn:#x} order={order}")
_MARK = "           agent-219     [001] .....    {ts:.6f}: tracing_mark_write: {text}"


def nr_free_for(seq):
    """Free blocks per zone and order in snapshot ``seq`` (1-based)."""
    return {"DMA": [2, 1, 1, 0, 1, 1, 0, 1, 1, 1, 2],
            "DMA32": [100 + seq, 50, 20, 10, 5, 3, 2, 1, 4, 10, 80 - seq],
            "Normal": [200 + 10 * seq, 80, 30, 12, 6, 4, 2, 2, 6, 20, 90 - 2 * seq]}


def trace_lines(n_per_phase=100, t0=10.0, base=0x100000 + 0x8000):
    """(lines, marker end times by seq): markers around each snapshot, and
    between them allocations of fresh pages and frees of half of them."""
    lines = ["# tracer: nop", "#"]
    ts = t0
    ends = {}
    pfn = base
    for seq, tag in enumerate(TAGS, 1):
        ts += 0.001
        lines.append(_MARK.format(ts=ts, text=f"oracle_snap_begin seq={seq} tag={tag}"))
        ts += 0.001
        lines.append(_MARK.format(ts=ts, text=f"oracle_snap_end seq={seq} tag={tag}"))
        ends[seq] = ts
        if seq == len(TAGS):
            break
        got = []
        for i in range(n_per_phase):
            ts += 0.001
            lines.append(_ALLOC.format(cpu=i % 2, ts=ts, pfn=pfn, order=0))
            got.append(pfn)
            pfn += 1
        for p in got[::2]:
            ts += 0.001
            lines.append(_FREE.format(cpu=1, ts=ts, pfn=p, order=0))
    return lines, ends


def _zoneinfo(zones, pcp, wmark_shift=0, boost=0):
    out = {}
    total = sum(z[3] for z in zones.values())
    for name, (start, spanned, present, managed) in zones.items():
        wmin = (MIN_FREE_KBYTES >> 2) * managed // total       # __setup_per_zone_wmarks()
        b, w = boost, wmark_shift            # zoneinfo prints each mark plus the boost
        out[name] = {"free": 1000, "boost": b, "min": wmin + b, "low": wmin * 5 // 4 + w + b,
                     "high": wmin * 3 // 2 + 2 * w + b, "promo": wmin * 7 // 4 + 3 * w + b,
                     "spanned": spanned,
                     "present": present, "managed": managed, "cma": 0,
                     "protection": [0, 0, 0, 0, 0],
                     "stats": {"nr_free_pages": 1000},
                     "pagesets": [{"cpu": c, "count": pcp[name][c], "high": 100, "batch": 10,
                                   "stat_threshold": 4} for c in range(2)],
                     "node_unreclaimable": 0, "start_pfn": start}
    return procfs.render_zoneinfo(out)


def write_recording(root, *, zones=None, kernel="6.12.117+deb12-amd64", manifest=True,
                    facts=True, trace=None, oom_kill=(0, 0, 0), blocks=None, nr_free=None,
                    wmark_shift=0, boost=0):
    """Write the recording into ``root`` (created); returns its Path.

    ``trace``: lines to write instead of :func:`trace_lines`' (the index's
    times then still come from the default markers).  ``nr_free``: callable
    seq -> {zone: nr_free list} (default :func:`nr_free_for`).  ``wmark_shift``:
    pages added to low (twice to high, three times to promo) in zoneinfo;
    ``boost``: the watermark boost zoneinfo shows (added to every mark)."""
    root = Path(root)
    zones = zones or ZONES
    blocks = blocks or BLOCKS
    nr_free = nr_free or nr_free_for
    root.mkdir(parents=True, exist_ok=True)
    lines, ends = trace_lines()
    (root / "trace.txt").write_text("\n".join(trace if trace is not None else lines) + "\n")
    snaps = root / "snapshots"
    snaps.mkdir()
    idx = ["seq\ttag\tmono_ns_first_file\tdir\tfiles"]
    names = list(zones)
    for seq, tag in enumerate(TAGS, 1):
        d = snaps / f"{seq:04d}-{tag}"
        d.mkdir()
        nr = nr_free(seq)
        (d / "buddyinfo").write_text(procfs.render_buddyinfo(names, [nr[n] for n in names]))
        free = np.zeros((len(names), 5, 11), np.int64)
        (d / "pagetypeinfo").write_text(procfs.render_pagetypeinfo(
            names, free, np.array([blocks[n] for n in names])))
        (d / "zoneinfo").write_text(_zoneinfo(zones, PCP, wmark_shift, boost))
        (d / "vmstat").write_text(procfs.render_vmstat({"nr_free_pages": 1000,
                                                        "oom_kill": oom_kill[seq - 1]}))
        idx.append(f"{seq}\t{tag}\t{int((ends[seq] - 0.0015) * 1e9)}\t{d.name}\t"
                   f"buddyinfo,pagetypeinfo,zoneinfo,vmstat")
    (snaps / "index.tsv").write_text("\n".join(idx) + "\n")
    if manifest:
        (root / "manifest.json").write_text(json.dumps({
            "run": root.name, "kernel": {"release": kernel, "trace_clock": "mono"},
            "machine": {"vcpus": 2, "zones": [
                {"node": 0, "zone": n, "start_pfn": z[0], "spanned": z[1], "present": z[2],
                 "managed": z[3]} for n, z in zones.items()]}}))
    if facts:
        (root / "facts").mkdir()
        (root / "facts" / "version").write_text(f"Linux version {kernel} (synthetic) #1 SMP\n")
        (root / "facts" / "sysctl_vm_min_free_kbytes").write_text(f"{MIN_FREE_KBYTES}\n")
    return root
