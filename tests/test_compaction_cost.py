"""spbsim.trace.compaction_cost (and tools/compaction_cost.py, `spbsim
validate --compaction-cost`): a recording's compactions, paired begin to
end per task, and the per-page costs read from them (the [SIM] kcompactd
cost)."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from spbsim.trace.compaction_cost import compactions, costs
from spbsim.trace.validate import _compaction_cost

TOOL = Path(__file__).resolve().parent.parent / "tools" / "compaction_cost.py"

_TRACE = """\
      kcompactd0-39      [001] .....    10.000000: mm_compaction_begin: zone_start=0x1000 migrate_pfn=0x1000 free_pfn=0xffe00 zone_end=0x100000, mode=sync
      kcompactd0-39      [001] .....    10.000100: mm_compaction_isolate_migratepages: range=(0x1000 ~ 0x1200) nr_scanned=512 nr_taken=32
           stress-7      [000] .....    10.000150: mm_page_alloc: page=0x1 pfn=0x1 order=0 migratetype=1 gfp_flags=GFP_KERNEL
      kcompactd0-39      [001] .....    10.000200: mm_compaction_isolate_freepages: range=(0xffc00 ~ 0xffe00) nr_scanned=488 nr_taken=32
      kcompactd0-39      [001] .....    10.001000: mm_compaction_migratepages: nr_migrated=100 nr_failed=0
           sh-8          [000] .....    10.001100: mm_compaction_begin: zone_start=0x1 migrate_pfn=0x1 free_pfn=0xe00 zone_end=0x1000, mode=sync
           sh-8          [000] .....    10.001150: mm_compaction_migratepages: nr_migrated=200 nr_failed=0
           sh-8          [000] .....    10.001200: mm_compaction_end: zone_start=0x1 migrate_pfn=0x400 free_pfn=0x400 zone_end=0x1000, mode=sync status=complete
      kcompactd0-39      [001] .....    10.005100: mm_compaction_end: zone_start=0x1000 migrate_pfn=0x1200 free_pfn=0xffc00 zone_end=0x100000, mode=sync status=partial_skipped
      kcompactd0-39      [001] .....    10.005500: mm_compaction_begin: zone_start=0x1 migrate_pfn=0x1 free_pfn=0xe00 zone_end=0x1000, mode=sync
      kcompactd0-39      [001] .....    10.005600: mm_compaction_isolate_migratepages: range=(0x1 ~ 0x200) nr_scanned=1000 nr_taken=0
      kcompactd0-39      [001] .....    10.005700: mm_compaction_end: zone_start=0x1 migrate_pfn=0x400 free_pfn=0x400 zone_end=0x1000, mode=sync status=complete
"""


def _trace(tmp_path):
    path = tmp_path / "trace.txt"
    path.write_text(_TRACE)
    return path


def test_compactions_pair_per_task_and_give_the_per_page_costs(tmp_path):
    runs = compactions(_trace(tmp_path))
    assert [(r["task"], r["scanned"], r["migrated"], r["status"]) for r in runs] == [
        ("sh", 0, 200, "complete"), ("kcompactd0", 1000, 100, "partial_skipped"),
        ("kcompactd0", 1000, 0, "complete")]
    assert abs(runs[0]["dt"] - 100e-6) < 1e-9 and abs(runs[1]["dt"] - 5.1e-3) < 1e-9
    # kcompactd's compactions only: the user's (sh, 0.5 us a page) is not kcompactd's cost
    scan_ns, mig_us, n_idle, n_busy = costs(runs)
    assert (n_idle, n_busy) == (1, 1)
    assert abs(scan_ns - 200.0) < 1e-6                  # 200 us over 1000 pages
    assert abs(mig_us - (5.1e6 - 200 * 1000) / 100 / 1e3) < 1e-6    # 49 us a page
    _, sh_us, sh_idle, sh_busy = costs(runs, task="sh")
    assert abs(sh_us - 0.5) < 1e-6 and (sh_idle, sh_busy) == (0, 1)
    out = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "trace.txt")],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == ("scan: 200 ns per scanned page (median of 1); "
                                    "migration: 49.0 us per migrated page (median of 1)")


def test_validate_takes_the_recorded_cost_or_a_given_one(tmp_path):
    rm = SimpleNamespace(machine_kwargs={})
    notes = _compaction_cost(rm, SimpleNamespace(trace=_trace(tmp_path)), "recorded")
    assert rm.machine_kwargs == {"compaction_migrate_us": 49.0, "compaction_scan_ns": 200.0}
    assert "49.0 us per migrated page" in notes[0]
    empty = tmp_path / "empty.txt"
    empty.write_text("".join(_TRACE.splitlines(True)[5:8]))     # the user's only
    rm = SimpleNamespace(machine_kwargs={})
    assert "the defaults stay" in _compaction_cost(rm, SimpleNamespace(trace=empty), "recorded")[0]
    assert rm.machine_kwargs == {}
    assert _compaction_cost(rm, None, (20.0, 50.0)) == []
    assert rm.machine_kwargs == {"compaction_migrate_us": 20.0, "compaction_scan_ns": 50.0}
