"""Run `spbsim validate` on recordings and print the fidelity table of
docs/fidelity.md: per recording, snapshots within targets, worst-zone misses,
and at the end snapshot per zone >=9 blocks sim/real, L1 % and simulated
failures; plus the request checksum that names the trace.

    python tools/fidelity_table.py REC_DIR [REC_DIR ...] [--json OUT]
"""
import argparse
import json
import sys
import time

from spbsim.trace.validate import validate


def row(out):
    s = out["summary"]
    rows = out["rows"]
    end = next((r for r in rows if r["tag"] == "end"), rows[-1])
    zones = []
    for name, m in end["zones"].items():
        if m["free_real"] == 0 and m["free_sim"] == 0:
            continue
        zones.append(f"{name} {m['ge9_sim']}/{m['ge9_real']} "
                     f"L1 {m['l1_pct']:.0f}%{'' if m['ok_pb'] is not False else ' pb!'}")
    w = out["whatif"]
    fails = sum(w["sim_failures_by_order"])
    oom = w["vmstat"].get("oom_kill", 0)
    met = s["targets_met"]
    return (f"| {out['recording']} | {out['label']} | {s['within_targets']}/{s['snapshots']} | "
            f"{met['ge9']}/{met['zone_snapshots']} | {met['l1']}/{met['zone_snapshots']} | "
            f"{met['pageblocks']}/{met['zone_snapshots']} | {'; '.join(zones)} | {fails} ({oom}) "
            f"| `{w['checksum'][:16]}` |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recordings", nargs="+")
    p.add_argument("--json")
    a = p.parse_args(argv)
    print("| recording | machine | snapshots within targets | >=9 ok | L1 ok | pageblocks ok "
          "| end: >=9 blocks sim/real, L1 | sim failures (OOM) | stream |")
    print("|---|---|---|---|---|---|---|---|---|")
    dump = {}
    for rec in a.recordings:
        t0 = time.monotonic()
        out = validate(rec)
        print(row(out), flush=True)
        out["whatif"].pop("pairer", None)
        dump[out["recording"]] = {"summary": out["summary"], "rows": out["rows"],
                                  "seconds": round(time.monotonic() - t0, 1)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dump, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
