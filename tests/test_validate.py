"""Tests of ``spbsim validate`` (spbsim.trace.validate) on a synthetic
recording (tests/recording.py), on the oracle recording's first 200k lines
(the whole of it under ``slow``), and of ``spbsim report`` on its results."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from recording import BLOCKS, PCP, ZONES, nr_free_for, write_recording
from spbsim.cli import main
from spbsim.trace import validate as V

from oracle import oracle_root

RUN1 = oracle_root() / "run1-mixed-s1"
needs_oracle = pytest.mark.skipif(not (RUN1 / "trace.txt.xz").exists(),
                                  reason=f"no oracle recording at {RUN1} (set SPBSIM_ORACLE)")


@pytest.fixture
def rec(tmp_path):
    return write_recording(tmp_path / "rec")


def test_compact_memory_without_direct_compaction_events_is_noted(tmp_path):
    """A whole-zone sync compaction in a user task is replayed as a
    compact_memory write; when the trace has no
    mm_compaction_try_to_compact_pages events at all, a direct compaction
    cannot be told from one, and validate says so."""
    import re
    from recording import trace_lines
    lines, _ = trace_lines()
    i = next(k for k, x in enumerate(lines) if "oracle_snap_begin seq=3" in x)
    ts = float(re.search(r"(\d+\.\d+):", lines[i]).group(1))
    lines[i:i] = [
        f"              sh-227     [001] .....    {ts - 0.0005:.6f}: mm_compaction_begin: "
        "zone_start=0x100000 migrate_pfn=0x100000 free_pfn=0x11fe00 zone_end=0x120000, mode=sync",
        f"              sh-227     [001] .....    {ts - 0.0004:.6f}: mm_compaction_end: "
        "zone_start=0x100000 migrate_pfn=0x11fe00 free_pfn=0x11fe00 zone_end=0x120000, "
        "mode=sync status=complete"]
    out = V.validate(write_recording(tmp_path / "r", trace=lines))
    # the trace ends before the compaction's [SIM] time: the end finishes it
    assert out["whatif"]["user_compactions"] == {"zones": 1, "unmatched": 0, "cut_short": 1,
                                                 "direct_traced": False}
    assert any("compact_memory" in n and "try_to_compact_pages" in n for n in out["notes"])


def _run(argv, capsys):
    """spbsim CLI: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _one_error_line(err):
    """The one line a refusal prints (``replay`` also draws progress bars)."""
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip() and "%|" not in x]
    assert len(lines) == 1, err
    assert lines[0].startswith("spbsim: error: ")
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- metrics by hand

def test_zone_metrics_by_hand():
    # sim: 4 order-0, 1 order-9 block;  real: 2 order-0, 2 order-9, 1 order-10
    sim = [4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    real = [2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1]
    m = V.zone_metrics(sim, real, {"Unmovable": 10, "Movable": 100},
                       {"Unmovable": 14, "Movable": 104, "Reclaimable": 0}, 5, 9)
    assert m["free_sim"] == 4 + 512 and m["free_real"] == 2 + 1024 + 1024
    # L1 = |4-2|*1 + |1-2|*512 + |0-1|*1024
    assert m["l1_pages"] == 2 + 512 + 1024
    assert m["l1_pct"] == pytest.approx(100 * 1538 / 2050)
    assert (m["ge9_sim"], m["ge9_real"]) == (1, 2 + 2)     # an order-10 block = 2 units
    assert (m["ge10_sim"], m["ge10_real"]) == (0, 1)
    assert m["ge9_pages_real"] == 4 * 512 and m["ge10_pages_real"] == 1024
    assert m["ok_ge9"] is True          # |1-4| = 3 <= max(0.4, 8)
    assert m["ok_l1"] is False
    # Unmovable off by 4 > max(0.7, 3): a miss; Movable off by 4 <= max(5.2, 3)
    assert m["ok_pb"] is False and m["pb_worst"] == ("Unmovable", -4)
    assert m["pb_sim"]["Reclaimable"] == 0
    assert (m["pcp_sim"], m["pcp_real"]) == (5, 9)


def test_zone_metrics_targets_edges():
    real = [0] * 9 + [100, 0]
    sim = [0] * 9 + [110, 0]
    m = V.zone_metrics(sim, real)
    assert m["ok_ge9"] is True                  # 10 % of 100 exactly
    assert m["l1_pct"] == pytest.approx(10.0) and m["ok_l1"] is True
    m = V.zone_metrics([0] * 9 + [111, 0], real)
    assert m["ok_ge9"] is False and m["ok_l1"] is False
    assert m["ok_pb"] is None                   # no pagetypeinfo
    m = V.zone_metrics([1] + [0] * 10, [0] * 11)
    assert math.isinf(m["l1_pct"]) and m["ok_l1"] is False
    # pageblocks: 5 % of 200 = 10 beats 3 blocks
    ok = V.zone_metrics(real, real, {"Movable": 210}, {"Movable": 200})
    bad = V.zone_metrics(real, real, {"Movable": 211}, {"Movable": 200})
    assert ok["ok_pb"] is True and bad["ok_pb"] is False


def test_policy_for_kernel():
    assert V.policy_for_kernel("6.12.117+deb12-amd64") == ("stock:6.12", None)
    assert V.policy_for_kernel("6.18.44-fc")[0] == "stock"
    pol, note = V.policy_for_kernel("6.1.0-31-amd64")
    assert pol in ("stock:6.1", "stock:6.12")
    if pol == "stock:6.12":
        assert "6.1" in note
    assert V.policy_for_kernel(None)[0] == "stock"


# ---------------------------------------------------------------- the machine

def test_machine_read_from_recording(rec):
    r = V.open_recording(rec)
    rm = V.recorded_machine(r)
    assert rm.cpus == 2 and rm.kernel == "6.12.117+deb12-amd64" and rm.policy == "stock:6.12"
    kw = rm.machine_kwargs
    assert kw["low_memory"] == 512 << 20 and kw["memory"] == 1 << 30
    assert kw["version"] == "6.12" and kw["min_free_kbytes"] == 16384
    assert rm.label == "6.12.117, 2 CPUs, 512M+512M"
    from spbsim.machine import Machine
    from spbsim.mm.state import ZS_MANAGED
    m = Machine(**kw)
    for name, (_, _, _, managed) in ZONES.items():
        z = ("DMA", "DMA32", "Normal").index(name)
        assert int(m.mem.zstat[z, ZS_MANAGED]) == managed
    diffs = V.machine_differences(rm, m)
    assert not [d for d in diffs if d.startswith("warning")], diffs
    assert any("DMA: present 4096 simulated vs 3998" in d for d in diffs)


def test_watermarks_are_the_recordings(tmp_path):
    """The kernel computes its watermarks from the managed pages of the moment
    min_free_kbytes is written, which can differ from what the snapshots'
    managed counts give: the simulated zones take zoneinfo's marks (less the
    boost it adds to each), and pcp high_min follows the LOW mark
    (zone_highsize())."""
    from spbsim.machine import Machine
    from spbsim.mm.state import PCP_BATCH, PCP_HIGH_MIN, ZSTAT
    rec = write_recording(tmp_path / "r", wmark_shift=3, boost=40)
    rm = V.recorded_machine(V.open_recording(rec))
    m = Machine(**rm.machine_kwargs).mem
    zi = V._read(V.open_recording(rec).snapshot("start"), "zoneinfo")
    for name in ZONES:
        z = ("DMA", "DMA32", "Normal").index(name)
        got = [int(m.zstat[z, ZSTAT[k]]) for k in ("wmark_min", "wmark_low", "wmark_high",
                                                    "wmark_promo")]
        assert got == [zi[name][k] - 40 for k in ("min", "low", "high", "promo")], name
        batch = int(m.pcp[z, 0, PCP_BATCH])
        assert int(m.pcp[z, 0, PCP_HIGH_MIN]) == max(got[1] // 2, 4 * batch)


def test_watermarks_bad_value():
    from spbsim.errors import ConfigError
    from spbsim.machine import Machine
    with pytest.raises(ConfigError, match="watermarks"):
        Machine(memory="1G", watermarks={"Normal": (10, 5, 20)})
    with pytest.raises(ConfigError, match="unknown zone"):
        Machine(memory="1G", watermarks={"HighMem": (1, 2, 3)})


def test_machine_from_facts_and_flags(tmp_path):
    rec = write_recording(tmp_path / "r", manifest=False, kernel="6.18.2")
    rm = V.recorded_machine(V.open_recording(rec))
    assert rm.kernel == "6.18.2" and rm.policy == "stock" and rm.cpus == 2
    rm = V.recorded_machine(V.open_recording(rec), policy="stock:defrag")
    assert rm.policy == "stock:defrag" and rm.machine_kwargs["defrag_mode"] is True


def test_deferred_init_blocks_become_a_hole(tmp_path):
    """pagetypeinfo counting fewer pageblocks than the present pages span
    (deferred struct page init): the rest is a hole at the zone's top."""
    blocks = dict(BLOCKS, Normal=[5, 120, 3, 0, 0])        # 128 of 256 blocks
    zones = dict(ZONES, Normal=(0x100000, 131072, 131072, 128 * 512))
    rec = write_recording(tmp_path / "r", blocks=blocks, zones=zones)
    rm = V.recorded_machine(V.open_recording(rec))
    assert rm.machine_kwargs["holes"] == (((0x100000 + 128 * 512) << 12, (128 * 512) << 12),)
    assert any("deferred" in n for n in rm.notes)


# ---------------------------------------------------------------- validate

def test_validate_synthetic(rec):
    out = V.validate(rec, detail=True)
    assert [r["tag"] for r in out["rows"]] == list(("start", "periodic-0001", "end"))
    for r in out["rows"]:
        assert set(r["zones"]) == {"DMA", "DMA32", "Normal"}
        want = nr_free_for(r["seq"])
        for name, m in r["zones"].items():
            assert m["nr_free_real"] == want[name]
            assert m["free_real"] == sum(c << o for o, c in enumerate(want[name]))
            assert m["pcp_real"] == sum(PCP[name])
            assert m["pb_real"]["Movable"] == BLOCKS[name][1]
            sim = np.array(m["nr_free_sim"])
            assert m["free_sim"] == int((sim << np.arange(11)).sum())
        assert r["sim_failures"] == 0 and r["oom_real"] == 0
    # 200 traced allocations, 100 freed
    w = out["whatif"]
    assert w["allocs"] == 200 and w["frees"]["paired"] == 100
    assert w["snapshots"][0]["proc"]["buddyinfo"].startswith("Node 0, zone      DMA")
    assert out["summary"]["snapshots"] == 3
    line = V.format_summary(out)
    assert line.startswith(f"rec [6.12.117, 2 CPUs, 512M+512M, policy stock:6.12]: "
                           f"{out['summary']['within_targets']}/3 snapshots within targets; end:")
    assert "Normal >=9" in line
    table = V.format_table(out)
    assert len([x for x in table.splitlines() if x.lstrip()[:1].isdigit()]) == 9


def test_validate_json_keys(rec, capsys):
    code, out, err = _run(["validate", str(rec), "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    for k in ("recording", "kernel", "policy", "cpus", "machine", "rows", "summary",
              "targets", "notes", "whatif"):
        assert k in d
    z = d["rows"][0]["zones"]["Normal"]
    for k in ("free_sim", "free_real", "l1_pct", "ge9_sim", "ge9_real", "ge10_sim",
              "ge10_real", "pb_sim", "pb_real", "pcp_sim", "pcp_real", "ok_ge9", "ok_l1",
              "ok_pb"):
        assert k in z
    for k in ("sim_failures_by_order", "oom_sim", "oom_real", "ok"):
        assert k in d["rows"][0]
    # what the what-if replay's JSON offers stays under "whatif"
    assert d["whatif"]["snapshots"][0]["tag"] == "start"
    assert "buddyinfo" in d["whatif"]["snapshots"][0]
    assert len(d["whatif"]["sim_failures_by_order"]) == 11
    assert "snapshots within targets" in err


def test_replay_whatif_json_keys_kept(rec, tmp_path, capsys):
    j = tmp_path / "r.json"
    code, out, err = _run(["replay", str(rec), "--mode", "what-if", "--memory", "1G",
                           "--low-memory", "512M", "--json", str(j)], capsys)
    assert code == 0, err
    d = json.loads(j.read_text())
    assert [s["tag"] for s in d["snapshots"]] == ["start", "periodic-0001", "end"]
    assert d["snapshots"][0]["buddyinfo"].startswith("Node 0, zone")
    assert len(d["sim_failures_by_order"]) == 11


def test_out_dir_and_report(rec, tmp_path, capsys):
    od = tmp_path / "out"
    code, out, err = _run(["validate", str(rec), "--out", str(od)], capsys)
    assert code == 0, err
    assert "snapshots within targets" in out.splitlines()[-1]
    assert (od / "validate.json").is_file() and (od / "metrics.parquet").is_file()
    assert sorted(p.name for p in (od / "sim").iterdir()) == \
        ["0001-start", "0002-periodic-0001", "0003-end"]
    assert (od / "sim" / "0003-end" / "pagetypeinfo").read_text().startswith("Page block")
    import pandas as pd
    df = pd.read_parquet(od / "metrics.parquet")
    assert len(df) == 9 and {"ge9_sim", "ge9_real", "l1_pct", "pb_real_Movable"} <= set(df)
    code, out, err = _run(["report", str(od)], capsys)
    assert code == 0, err
    html = (od / "report.html").read_text()
    assert "snapshots within targets" in html
    for z in ("DMA", "DMA32", "Normal"):
        assert (od / "figures" / f"validate_{z}.png").stat().st_size > 1000


def test_fail_on_miss(rec, capsys):
    code, out, err = _run(["validate", str(rec), "--fail-on-miss"], capsys)
    d = V.validate(rec)
    missed = d["summary"]["within_targets"] < d["summary"]["snapshots"]
    assert code == (1 if missed else 0)


# ---------------------------------------------------------------- refusals: one line, exit 2

def _edit_trace(rec, fn):
    p = rec / "trace.txt"
    lines = p.read_text().splitlines()
    fn(lines)
    p.write_text("\n".join(lines) + "\n")
    return lines


def _first_alloc(lines):
    return next(i for i, x in enumerate(lines) if "mm_page_alloc:" in x)


def test_malformed_line(rec, capsys):
    lines = _edit_trace(rec, lambda ls: ls.__setitem__(_first_alloc(ls) + 3, ls[_first_alloc(
        ls) + 3].replace("pfn=0x", "pfn=0xzz")))
    n = next(i for i, x in enumerate(lines) if "pfn=0xzz" in x) + 1
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and f"trace.txt:{n}:" in line and "pfn" in line


def test_missing_snapshots_folder(rec, capsys):
    shutil.rmtree(rec / "snapshots")
    code, out, err = _run(["validate", str(rec)], capsys)
    assert code == 2 and "no snapshots/ folder" in _one_error_line(err)


def test_missing_snapshot_dir(rec, capsys):
    shutil.rmtree(rec / "snapshots" / "0002-periodic-0001")
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "index.tsv:3:" in line and "field 'dir'" in line


def test_malformed_index(rec, capsys):
    p = rec / "snapshots" / "index.tsv"
    p.write_text(p.read_text().replace("\n2\t", "\nx2\t"))
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "index.tsv:3:" in line and "field 'seq'" in line


def test_malformed_watermark(rec, capsys):
    """A zoneinfo whose LOW mark lies under MIN is no kernel's: refused with
    the file, line and field, before anything is replayed."""
    p = rec / "snapshots" / "0001-start" / "zoneinfo"
    lines, zone = p.read_text().splitlines(), None
    for i, x in enumerate(lines):
        zone = x.split()[-1] if x.startswith("Node ") else zone
        if zone == "DMA32" and x.split()[:1] == ["low"]:
            lines[i], at = "        low      1", i + 1
    p.write_text("\n".join(lines) + "\n")
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and f"zoneinfo:{at}:" in line and "field 'low'" in line and "DMA32" in line


def test_pfn_outside_zones(rec, capsys):
    def edit(ls):
        i = _first_alloc(ls) + 5
        ls[i] = ls[i].split("pfn=")[0] + "pfn=0x200000 order=0 migratetype=1 " \
                                         "gfp_flags=GFP_HIGHUSER_MOVABLE"
    lines = _edit_trace(rec, edit)
    n = next(i for i, x in enumerate(lines) if "pfn=0x200000" in x) + 1
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and f"trace.txt:{n}: mm_page_alloc: field 'pfn'" in line
    assert "outside every zone" in line


def test_order_above_max(rec, capsys):
    def edit(ls):
        i = _first_alloc(ls) + 7
        ls[i] = ls[i].replace("order=0", "order=11")
    lines = _edit_trace(rec, edit)
    n = next(i for i, x in enumerate(lines) if "order=11" in x) + 1
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and f"trace.txt:{n}: mm_page_alloc: field 'order'" in line
    assert "MAX_PAGE_ORDER 10" in line


def test_replay_refuses_order_above_max_too(rec, capsys):
    _edit_trace(rec, lambda ls: ls.__setitem__(_first_alloc(ls),
                                               ls[_first_alloc(ls)].replace("order=0",
                                                                            "order=11")))
    code, out, err = _run(["replay", str(rec), "--mode", "what-if", "--memory", "1G",
                           "--low-memory", "512M"], capsys)
    assert code == 2 and "field 'order'" in _one_error_line(err)


def test_replay_refuses_pfn_beyond_memory(rec, capsys):
    """A 1G machine all below 4 GiB has no pfn above 4 GiB, where the trace's are."""
    code, out, err = _run(["replay", str(rec), "--mode", "what-if", "--memory", "1G",
                           "--low-memory", "1G"], capsys)
    line = _one_error_line(err)
    assert code == 2 and "field 'pfn'" in line and "outside every zone" in line


def test_trace_from_more_cpus(rec, capsys):
    _edit_trace(rec, lambda ls: ls.__setitem__(_first_alloc(ls) + 2,
                                               ls[_first_alloc(ls) + 2].replace("[000]",
                                                                                "[005]")))
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "field 'cpu'" in line and "2 CPUs" in line


def test_snapshots_from_another_machine_size(rec, capsys):
    zi = rec / "snapshots" / "0002-periodic-0001" / "zoneinfo"
    zi.write_text(zi.read_text().replace("spanned  131072", "spanned  262144")
                  .replace("present  131072", "present  262144"))
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "0002-periodic-0001/zoneinfo" in line and "field 'spanned'" in line


def test_trace_from_another_recording(rec, capsys):
    """Same markers, but the snapshots were read 100 s away from them."""
    _shift_snapshot_time(rec, 2, 100)
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "index.tsv:3: field 'mono_ns_first_file'" in line


def test_slow_snapshot_read_between_its_markers(rec):
    """A snapshot that takes long (kpageflags of a large machine on a busy
    host) is read after its begin marker and long before its end marker: the
    same recording."""
    import re as _re

    def earlier_begin(ls):
        for i, x in enumerate(ls):
            if "oracle_snap_begin seq=2 " in x:
                ts = float(_re.search(r"(\d+\.\d+): tracing_mark_write", x).group(1))
                ls[i] = x.replace(f"{ts:.6f}:", f"{ts - 9:.6f}:")
    _edit_trace(rec, earlier_begin)
    _shift_snapshot_time(rec, 2, -8)
    res = V.validate(rec)
    assert [r["tag"] for r in res["rows"]][:2] == ["start", "periodic-0001"]


def test_marker_times_unchecked_without_mono_clock(rec):
    m = json.loads((rec / "manifest.json").read_text())
    m["kernel"]["trace_clock"] = "[local] global mono"
    (rec / "manifest.json").write_text(json.dumps(m))
    _shift_snapshot_time(rec, 2, 100)
    assert len(V.validate(rec)["rows"]) == 3


def _shift_snapshot_time(rec, row, seconds):
    p = rec / "snapshots" / "index.tsv"
    rows = p.read_text().splitlines()
    cells = rows[row].split("\t")
    cells[2] = str(int(cells[2]) + seconds * 10**9)
    rows[row] = "\t".join(cells)
    p.write_text("\n".join(rows) + "\n")


def test_no_markers(rec, capsys):
    _edit_trace(rec, lambda ls: ls.__init__([x for x in ls if "oracle_snap" not in x]))
    code, out, err = _run(["validate", str(rec)], capsys)
    assert code == 2 and "no 'oracle_snap_end" in _one_error_line(err)


def test_not_a_recording(tmp_path, capsys):
    code, out, err = _run(["validate", str(tmp_path / "nope")], capsys)
    assert code == 2 and "no such recording" in _one_error_line(err)
    (tmp_path / "empty").mkdir()
    code, out, err = _run(["validate", str(tmp_path / "empty")], capsys)
    assert code == 2 and "no trace" in _one_error_line(err)


def test_malformed_snapshot_file_before_replay(rec, capsys, monkeypatch):
    bi = rec / "snapshots" / "0003-end" / "buddyinfo"
    bi.write_text(bi.read_text().replace("Normal", "Normal x", 1))
    import spbsim.trace.whatif as W
    monkeypatch.setattr(W, "replay_whatif", lambda *a, **k: pytest.fail("replayed"))
    code, out, err = _run(["validate", str(rec)], capsys)
    line = _one_error_line(err)
    assert code == 2 and "0003-end/buddyinfo:3:" in line


def test_kpageflags_of_another_machine(rec, capsys):
    np.zeros(1000, "<u8").tofile(rec / "snapshots" / "0001-start" / "kpageflags.bin")
    code, out, err = _run(["validate", str(rec)], capsys)
    assert code == 2 and "kpageflags from another machine" in _one_error_line(err)


# ---------------------------------------------------------------- the oracle

@needs_oracle
def test_oracle_first_200k_lines():
    out = V.validate(RUN1, max_lines=200_000)
    assert out["policy"] == "stock:6.12" and out["cpus"] == 2
    assert out["label"] == "6.12.117, 2 CPUs, 512M+1G"
    # managed pages match the kernel's exactly (kpageflags' reserved pages)
    assert not [n for n in out["notes"] if n.startswith("warning")], out["notes"]
    assert [r["tag"] for r in out["rows"]][:2] == ["start", "periodic-0001"]
    start = out["rows"][0]
    for name in ("DMA", "DMA32", "Normal"):
        m = start["zones"][name]
        # the replay starts from the start snapshot (spbsim.trace.start): its
        # free memory up to what moved between the reads of buddyinfo and kpageflags
        assert abs(m["free_sim"] - m["free_real"]) <= 0.01 * m["free_real"]
        assert m["ge9_sim"] == m["ge9_real"]
    assert start["zones"]["Normal"]["free_real"] == 13252


@needs_oracle
@pytest.mark.slow
def test_oracle_whole_recording(tmp_path):
    out = V.validate(RUN1, detail=True)
    assert out["summary"]["snapshots"] == 55
    assert out["rows"][-1]["tag"] == "end"
    assert out["whatif"]["trace"]["lines"] == 6317847
    V.write_results(out, tmp_path / "v")
    from spbsim.report.html import write_report
    assert Path(write_report(tmp_path / "v")).is_file()


# ---------------------------------------------------------------- failures near the kernel's

def test_failures_near_kernel_by_hand():
    """Each simulated failure gets the signed time to the nearest request of
    its order the kernel failed, and the count of those within the window."""
    log = {"sim": [[10.0, 9, 0], [20.0, 9, 1], [30.0, 3, 0]], "complete": True,
           "kernel": [[25.0, 9, 0], [11.5, 9, 1], [30.1, 2, 0]]}
    f = V.failures_near_kernel(log, near_s=2.0)
    assert [x["kernel_nearest_s"] for x in f["sim"]] == [1.5, 5.0, None]
    assert [x["kernel_within"] for x in f["sim"]] == [1, 0, 0]
    assert f["near"] == 1 and f["near_s"] == 2.0 and f["complete"]
    assert f["kernel_failed_by_order"][9] == 2 and f["kernel_failed_by_order"][2] == 1
    assert V.failures_near_kernel(None)["sim"] == []
    # only the failures up to the last compared snapshot, as the target counts
    f = V.failures_near_kernel(log, near_s=2.0, until=25.0)
    assert [x["t"] for x in f["sim"]] == [10.0, 20.0] and f["near"] == 1
    assert f["kernel_failed_by_order"][2] == 1


def test_validate_logs_failures_beside_the_kernels(tmp_path, capsys):
    """More order-10 GFP_NOWAIT requests than the start state has blocks:
    the simulator fails some, each logged with its time; the kernel's own
    failed requests (page=0) in the stream are logged too, and validate
    counts the simulated failures within FAILURE_NEAR_S of one of them."""
    import re
    from recording import trace_lines
    lines, _ = trace_lines()
    i = next(k for k, x in enumerate(lines) if "oracle_snap_end seq=1" in x) + 1
    ts = float(re.search(r"(\d+\.\d+):", lines[i - 1]).group(1))
    alloc = ("          stress-300     [000] .....    {ts:.6f}: mm_page_alloc: "
             "page=00000000af3f5202 pfn={pfn:#x} order={o} migratetype=0 gfp_flags=GFP_NOWAIT")
    failed = ("          stress-300     [001] .....    {ts:.6f}: mm_page_alloc: "
              "page=0000000000000000 pfn=0x0 order={o} migratetype=0 gfp_flags=GFP_NOWAIT")
    burst = []
    for k in range(300):
        ts += 1e-6
        burst.append(alloc.format(ts=ts, pfn=0x2000 + (k << 10), o=10))
        if k == 150:
            burst.append(failed.format(ts=ts, o=10))
            burst.append(failed.format(ts=ts, o=9))
    lines[i:i] = burst
    out = V.validate(write_recording(tmp_path / "r", trace=lines))
    fails = out["whatif"]["sim_failures_by_order"][10]
    assert fails > 0
    log = out["whatif"]["failure_log"]
    assert len(log["sim"]) == fails and log["complete"]
    assert all(o == 10 for _t, o, _c in log["sim"])
    assert sorted(o for _t, o, _c in log["kernel"]) == [9, 10]
    f = out["failures"]
    assert f["near"] == fails and all(x["kernel_within"] == 1 for x in f["sim"])
    assert all(abs(x["kernel_nearest_s"]) < 1e-3 for x in f["sim"])
    assert f"({fails} within 2 s of one the kernel failed)" in V.format_summary(out)
    code, text, err = _run(["validate", str(tmp_path / "r"), "--json"], capsys)
    assert code == 0 and json.loads(text)["failures"]["near"] == fails
