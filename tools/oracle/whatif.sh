#!/bin/bash
# whatif.sh - baseline what-if replay of recordings with the current spbsim.
#
#   tools/oracle/whatif.sh OUTDIR REC_DIR...
#
# Runs `spbsim replay REC --mode what-if --kernel-version 6.12` with
# --memory, --low-memory and --cpus taken from REC/manifest.json (the 6.12
# model also for 6.1 recordings), writing OUTDIR/NAME.txt (the table) and
# OUTDIR/NAME.json; when the replay fails, its output goes to OUTDIR/NAME.err.
# index.py --whatif OUTDIR turns the `end` rows into a table.
set -uo pipefail
out=$1; shift
mkdir -p "$out"
for rec in "$@"; do
    name=$(basename "$rec")
    read -r mem low cpus < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["machine"]
print("%dM %dM %d" % (m["ram_mb"], min(m["ram_mb"], m["ram_below_4g_mb"]), m["vcpus"]))' "$rec/manifest.json")
    echo "[whatif] $name: --memory $mem --low-memory $low --cpus $cpus" >&2
    rm -f "$out/$name.txt" "$out/$name.json" "$out/$name.err"
    if nice -n "${NICE:-10}" spbsim replay "$rec" --mode what-if --kernel-version 6.12 \
        --memory "$mem" --low-memory "$low" --cpus "$cpus" --json "$out/$name.json" \
        > "$out/$name.txt" 2> "$out/$name.log"; then
        cat "$out/$name.txt"
    else
        rc=$?
        { cat "$out/$name.txt"; tr '\r' '\n' < "$out/$name.log" | grep -v '%|' ; echo "exit status $rc"; } > "$out/$name.err"
        rm -f "$out/$name.txt"
        echo "[whatif] $name: FAILED (exit $rc), see $out/$name.err" >&2
    fi
done
