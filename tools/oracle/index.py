#!/usr/bin/env python3
"""index.py - one markdown table describing a folder of recordings.

For every RECORDINGS/*/manifest.json: kernel, CPUs, RAM (below/above 4 GiB),
the workload (comment lines of run.env), traced duration (guest uptime from
tracing on to off), trace lines, sha256 of trace.txt.xz (first 16 hex) and
the start -> end deltas of selected /proc/vmstat counters.  With --whatif
DIR, the `end` row of the what-if replay (simulated/real free pages and
free 2 MiB units in buddies of order >= 9 per zone, pcp pages, failures) is added per recording, parsed from DIR/NAME.txt (the text output of
`spbsim replay --mode what-if`); DIR/NAME.err is quoted instead when the
replay failed.

usage: index.py RECORDINGS [--whatif DIR] [-o INDEX.md]
"""
import argparse
import glob
import json
import os

VMSTAT = ["pgmigrate_success", "compact_stall", "compact_daemon_wake", "allocstall_dma",
          "allocstall_dma32", "allocstall_normal", "allocstall_movable", "oom_kill",
          "thp_fault_alloc", "thp_fault_fallback"]


def vmstat(d):
    out = {}
    for line in open(os.path.join(d, "vmstat")):
        k, _, v = line.partition(" ")
        out[k] = int(v)
    return out


def snapdir(rec, tag):
    for line in open(os.path.join(rec, "snapshots", "index.tsv")).readlines()[1:]:
        f = line.rstrip("\n").split("\t")
        if f[1] == tag:
            return os.path.join(rec, "snapshots", f[3])
    raise SystemExit("index.py: %s: no %r snapshot" % (rec, tag))


def workload(env_text):
    lines = []
    for line in env_text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(lines)


def row(rec):
    m = json.load(open(os.path.join(rec, "manifest.json")))
    mach, t, ti = m["machine"], m["trace"], m["timing_s"]
    v0, v1 = vmstat(snapdir(rec, "start")), vmstat(snapdir(rec, "end"))
    delta = {k: v1.get(k, 0) - v0.get(k, 0) for k in VMSTAT}
    low = min(mach["ram_mb"], mach["ram_below_4g_mb"])
    return m, {
        "name": m["run"], "kernel": m["kernel"]["release"], "cpus": mach["vcpus"],
        "ram": "%d MiB (%d below / %d above 4 GiB)" % (mach["ram_mb"], low, mach["ram_mb"] - low),
        "workload": workload(m["workload"]["run_env"]),
        "traced_s": ti["guest_uptime_tracing_off"] - ti["guest_uptime_tracing_on"],
        "workload_s": ti["workload"], "lines": t["lines"], "sha": t["sha256_xz"][:16],
        "complete": t["complete"], "vmstat": delta,
    }


def whatif_end(path):
    """(zones, {zone: (free sim/real, >=9 sim/real)}, pcp sim/real, fails, first
    line) of the `end` row in a what-if text table, or None without one."""
    lines = open(path).read().splitlines()
    head = next((l for l in lines if l.lstrip().startswith("seq ")), None)
    end = next((l for l in lines if len(l.split()) > 2 and l.split()[1] == "end"), None)
    if head is None or end is None:
        return None
    zones = [c.split()[0] for c in head.split("|")[1:-1]]
    cells = [c.split() for c in end.split("|")]
    per = {z: (c[0], c[1]) for z, c in zip(zones, cells[1:-1])}
    return zones, per, cells[-1][0], cells[-1][1], lines[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recordings")
    ap.add_argument("--whatif")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()
    rows = [row(os.path.dirname(p))
            for p in sorted(glob.glob(os.path.join(a.recordings, "*", "manifest.json")))]
    out = ["# Real-kernel recordings", "",
           "| name | kernel | CPUs | RAM | traced s (workload s) | trace lines | sha256 trace.txt.xz | complete |",
           "|---|---|---|---|---|---|---|---|"]
    for _m, r in rows:
        out.append("| %s | %s | %d | %s | %.1f (%.1f) | %s | %s | %s |" % (
            r["name"], r["kernel"], r["cpus"], r["ram"], r["traced_s"], r["workload_s"],
            "{:,}".format(r["lines"]), r["sha"], r["complete"]))
    out += ["", "## Workloads", ""]
    for _m, r in rows:
        out.append("- **%s**: %s" % (r["name"], r["workload"]))
    out += ["", "## /proc/vmstat deltas, start -> end snapshot", "",
            "| name | " + " | ".join(VMSTAT) + " |", "|---|" + "---|" * len(VMSTAT)]
    for _m, r in rows:
        out.append("| %s | %s |" % (r["name"], " | ".join(str(r["vmstat"][k]) for k in VMSTAT)))
    if a.whatif:
        out += whatif_section(a.whatif, rows)
    text = "\n".join(out) + "\n"
    if a.output:
        open(a.output, "w").write(text)
    print(text)


def whatif_section(wdir, rows):
    out = ["", "## What-if replay, `end` row (sim/real)", "",
           "`spbsim replay REC --mode what-if --kernel-version 6.12 --memory M --low-memory L "
           "--cpus C` with M, L, C from the manifest; outputs in `%s`." % wdir, "",
           "| name | zone | free pages sim/real | >=9 blocks sim/real | pcp sim/real | sim failures |",
           "|---|---|---|---|---|---|"]
    for _m, r in rows:
        txt, err = (os.path.join(wdir, r["name"] + e) for e in (".txt", ".err"))
        if os.path.exists(err):
            out.append("| %s | replay failed: `%s` | | | | |" % (
                r["name"], open(err).read().strip().splitlines()[-1][:300]))
            continue
        got = whatif_end(txt) if os.path.exists(txt) else None
        if got is None:
            out.append("| %s | (no what-if result) | | | | |" % r["name"])
            continue
        zones, per, pcp, fails, _first = got
        for i, z in enumerate(zones):
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                r["name"] if i == 0 else "", z, per[z][0], per[z][1],
                pcp if i == 0 else "", fails if i == 0 else ""))
    return out


if __name__ == "__main__":
    main()
