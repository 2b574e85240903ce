#!/bin/bash
# record.sh - re-record spbsim's real-kernel recordings from their run files.
#
#   tools/oracle/record.sh            # every run in tools/oracle/runs/*.env
#   tools/oracle/record.sh NAME...    # selected runs
#
# Each run is runs/NAME.env (kernel package, RAM, RAM below 4 GiB, CPUs,
# swap, ring buffer), runs/NAME.sh (traced guest workload) and optionally
# runs/NAME.setup.sh (untraced set-up).  The capture kit (qemu + busybox
# initramfs + stock Debian kernel) records each into $SPBSIM_RECORDINGS/NAME
# and check.py then verifies it: trace complete (no dropped events) and
# kpageflags agreeing with buddyinfo at the start and end snapshots.
# A recording that already exists is kept unless FORCE=1.  Re-recording
# yields a new trace (the guest is not deterministic): name traces by the
# sha256 in their manifest.json.
#
# Environment:
#   SPBSIM_RECORDINGS   output folder      (default: <checkout>/../oracle-data)
#   SPBSIM_CAPTURE_KIT  capture kit folder (default: <checkout>/../shared/oracle/capture)
#   SPBSIM_ORACLE_WORK  scratch folder     (default: /tmp/spbsim-oracle-work)
#   NICE                niceness of the capture (default 5)
#   FORCE=1, ACCEL=tcg|kvm|auto            passed to the kit's capture.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
KIT=${SPBSIM_CAPTURE_KIT:-$CHECKOUT/../shared/oracle/capture}
OUT=${SPBSIM_RECORDINGS:-$CHECKOUT/../oracle-data}
WORK=${SPBSIM_ORACLE_WORK:-/tmp/spbsim-oracle-work}
RUNS=$HERE/runs

[ -x "$KIT/capture.sh" ] || { echo "record.sh: no capture kit at $KIT (set SPBSIM_CAPTURE_KIT)" >&2; exit 2; }
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)

if (($#)); then names=("$@"); else
    names=(); for f in "$RUNS"/*.env; do names+=("$(basename "$f" .env)"); done
fi
for n in "${names[@]}"; do
    [ -f "$RUNS/$n.env" ] && [ -f "$RUNS/$n.sh" ] || { echo "record.sh: no run $n in $RUNS" >&2; exit 2; }
done

rc=0
for n in "${names[@]}"; do   # one at a time: a capture keeps the host's cores busy
    ORACLE_DATA=$OUT ORACLE_RUNS=$RUNS ORACLE_WORK=$WORK \
        nice -n "${NICE:-5}" "$KIT/capture.sh" "$n"
    python3 "$HERE/check.py" --kit "$KIT" "$OUT/$n" || rc=1
done
exit $rc
