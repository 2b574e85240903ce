"""Tests of ``spbsim record`` (spbsim.trace.record).  The end-to-end test
records a real 2-second command on this host and validates the recording; it
needs root and tracefs and is skipped (saying why) otherwise."""
import json
import os
import subprocess

import pytest

from spbsim.cli import main
from spbsim.errors import SpbsimError
from spbsim.trace import record as R


def _why_not_here():
    if not os.path.exists("/proc/buddyinfo"):
        return "not a Linux host"
    if os.geteuid() != 0:
        return "needs root (tracefs, /proc/pagetypeinfo, /proc/kpageflags)"
    try:
        R.find_tracefs(mount=False)
    except SpbsimError:
        if not os.path.isdir("/sys/kernel/tracing"):
            return "no tracefs"
    return None


WHY = _why_not_here()
needs_host = pytest.mark.skipif(WHY is not None, reason=f"spbsim record: {WHY}")

#: allocates and frees 200 MB, about 2 s
COMMAND = ["python3", "-c", "import time; b = b'x' * (200 << 20); time.sleep(1); del b; "
                            "time.sleep(1)"]


def test_parse_period():
    assert R.parse_period("2s") == 2.0
    assert R.parse_period("500ms") == 0.5
    assert R.parse_period("1.5") == 1.5
    for bad in ("0s", "fast", "-1", ""):
        with pytest.raises(SpbsimError, match="--snapshot-every"):
            R.parse_period(bad)


def test_record_refuses_bad_options(tmp_path):
    with pytest.raises(SpbsimError, match="no COMMAND"):
        R.record([], out_dir=tmp_path / "r")
    with pytest.raises(SpbsimError, match="--buffer-kb"):
        R.record(["true"], out_dir=tmp_path / "r", buffer_kb=10)


@needs_host
def test_record_refuses_nonempty_out_and_missing_events(tmp_path, monkeypatch):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x").write_text("")
    with pytest.raises(SpbsimError, match="exists and is not empty"):
        R.record(["true"], out_dir=tmp_path / "r")
    monkeypatch.setattr(R, "REQUIRED_EVENTS", R.REQUIRED_EVENTS + ("kmem/no_such_event",))
    with pytest.raises(SpbsimError, match="missing kmem/no_such_event"):
        R.record(["true"], out_dir=tmp_path / "r2")


@needs_host
def test_record_then_validate(tmp_path, capsys):
    out = tmp_path / "rec"
    with pytest.raises(SystemExit) as e:
        main(["record", "--out", str(out), "--snapshot-every", "1s", "--kpageflags", "--",
              *COMMAND])
    assert e.value.code == 0, capsys.readouterr().err
    capsys.readouterr()
    m = json.loads((out / "manifest.json").read_text())
    assert m["exit_code"] == 0 and m["trace"]["lines"] > 1000
    assert m["kernel"]["MAX_PAGE_ORDER"] == 10 and m["kernel"]["trace_clock"] == "mono"
    rows = (out / "snapshots" / "index.tsv").read_text().splitlines()
    tags = [r.split("\t")[1] for r in rows[1:]]
    assert tags[0] == "start" and tags[-1] == "end" and len(tags) >= 3
    for d in ("0001-start", f"{len(tags):04d}-end"):
        assert {"buddyinfo", "pagetypeinfo", "zoneinfo", "vmstat", "meminfo",
                "kpageflags.bin.zst"} <= {p.name for p in (out / "snapshots" / d).iterdir()}
    assert (out / "facts" / "version").read_text().startswith("Linux version")
    assert (out / "facts" / "format-kmem-mm_page_alloc").is_file()
    # our tracefs instance is gone, the global tracing state untouched (record
    # unmounts tracefs again if it mounted it: look with a mount of our own)
    tracefs, mounted = R.find_tracefs(mount=True)
    try:
        assert not [p for p in (tracefs / "instances").iterdir()
                    if p.name.startswith("spbsim-")]
    finally:
        if mounted:
            subprocess.run(["umount", str(tracefs)], check=False)
    from spbsim.trace import validate as V
    res = V.validate(out)
    assert [r["tag"] for r in res["rows"]] == tags
    assert res["policy"] == V.policy_for_kernel(m["kernel"]["release"])[0]
    assert res["whatif"]["start"]["mode"] == "snapshot"
    assert res["whatif"]["allocs"] > 0
    assert not [n for n in res["notes"] if n.startswith("warning")], res["notes"]
