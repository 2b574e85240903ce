"""spbsim.report: paired comparison table, figures, the HTML report, CLI commands."""
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest
from workloads import PRESSURE_SOURCES

from spbsim.errors import ConfigError, SpbsimError
from spbsim.report.compare import METRICS, CompareError, build_table, run_compare
from spbsim.results import ResultsError

SCENARIO = """
[scenario]
name = "tiny"
memory = "2G"
cpus = 4
duration = "5s"
seed = 1
sample_interval = "1s"

""" + PRESSURE_SOURCES

POLICIES = ["stock", "stock:defrag"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, f"{path}: not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def cmp_dir(tmp_path_factory):
    from spbsim.scenario import scenario_from_text
    scenario_from_text(SCENARIO, "tiny.toml")       # the inline scenario is valid
    d = tmp_path_factory.mktemp("report")
    path = d / "tiny.toml"
    path.write_text(SCENARIO)
    out = d / "cmp"
    table = run_compare(str(path), POLICIES, seeds=2, out_dir=str(out), jobs=2, progress=False)
    return out, table


def test_table_rows_columns_and_pairing(cmp_dir):
    out, table = cmp_dir
    assert table["policies"] == POLICIES
    assert table["seeds"] == [1, 2]
    names = [r["metric"] for r in table["rows"]]
    assert names[:len(METRICS)] == [m[0] for m in METRICS]
    for r in table["rows"]:
        assert list(r["cells"]) == POLICIES
        for c in r["cells"].values():
            assert len(c["values"]) == 2
    base = {r["metric"]: r["cells"]["stock"] for r in table["rows"]}
    assert base["2 MB blocks obtainable"]["mean"] > 0
    assert base["Free lists visited per allocation"]["mean"] >= 1
    assert all(r["cells"]["stock"]["delta_pct"] in (0.0,) or np.isnan(r["cells"]["stock"]
                                                                       ["delta_pct"])
               for r in table["rows"])
    # paired: every policy saw the same request stream per seed
    for sd, cs in table["request_checksums"].items():
        for p in POLICIES:
            with open(out / p.replace(":", "_") / f"seed{sd}" / "summary.json") as f:
                assert json.load(f)["request_checksum"] == cs
    assert len(set(table["request_checksums"].values())) == 2   # seeds differ
    text = table["text"]
    for p in POLICIES:
        assert p in text.splitlines()[0]
    assert "±" in text and "%" in text and "paired request streams" in text
    for name in ("compare.csv", "compare.md", "compare.json"):
        assert (out / name).is_file()
    csv_lines = (out / "compare.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(table["rows"])
    assert "stock:mean" in csv_lines[0] and "stock:defrag:delta_pct" in csv_lines[0]
    md = (out / "compare.md").read_text()
    assert md.startswith("| metric | stock | stock:defrag |")
    meta = json.loads((out / "compare.json").read_text())
    assert meta["policies"] == POLICIES and set(meta["runs"]["stock"]) == {"1", "2"}
    for p in POLICIES:
        for sd in (1, 2):
            d = out / p.replace(":", "_") / f"seed{sd}"
            assert (d / "pageblocks.npz").is_file() and (d / "proc" / "buddyinfo").is_file()


def test_unpaired_streams_are_an_error(cmp_dir):
    from spbsim.report.compare import check_paired
    _, table = cmp_dir
    runs = dict(table["summaries"])
    assert check_paired(runs, POLICIES, [1, 2]) == table["request_checksums"]
    k = ("stock:defrag", 1)
    runs[k] = dict(runs[k], request_checksum="deadbeef")
    with pytest.raises(CompareError, match="seed 1: the runs saw different request streams"):
        check_paired(runs, POLICIES, [1, 2])


def test_one_seed_shows_value_only():
    from spbsim.report.compare import format_text
    hp = {"1g_free": 0, "1g_obtainable": 1, "2m_free": 5, "2m_obtainable": 7}
    s = {"hugepages": hp, "request_checksum": "x"}
    t = build_table({("a", 1): s, ("b", 1): dict(s, hugepages={**hp, "2m_free": 10})},
                    ["a", "b"], [1])
    txt = format_text(t)
    line = next(x for x in txt.splitlines() if x.startswith("2 MB blocks free"))
    assert "±" not in line and "+100.00%" in line
    assert "n/a" in next(x for x in txt.splitlines() if x.startswith("Tainted SPBs"))


def test_bad_policy_fails_before_running(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(SCENARIO)
    with pytest.raises(ConfigError, match="spb:v1"):
        run_compare(str(p), ["stock", "spb:v1"], out_dir=str(tmp_path / "o"), progress=False)
    with pytest.raises(CompareError, match="repeated"):
        run_compare(str(p), ["stock", "stock"], out_dir=str(tmp_path / "o"), progress=False)
    assert not (tmp_path / "o").exists()


def test_figures_and_report(cmp_dir):
    from spbsim.report.html import write_report
    out, _ = cmp_dir
    html_path = write_report(str(out))
    figs = out / "figures"
    pngs = sorted(figs.glob("*.png"))
    names = {p.stem for p in pngs}
    assert names == {"overlay", "claim_steal", "pageblock_map_stock_seed1",
                     "pageblock_map_stock_defrag_seed1"}
    for p in pngs:
        assert (figs / (p.stem + ".svg")).is_file()
        w, h = png_size(p)
        assert w >= 600 and h >= 200
    # 2 GB = 2 superpageblock rows: 12 x (2 + 0.28 * 2) inches at 100 dpi
    assert png_size(figs / "pageblock_map_stock_seed1.png") == (1200, 256)
    page = open(html_path, encoding="utf-8").read()
    assert page.count("<img ") == len(pngs)
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "http://" not in page and "https://" not in page
    assert "<table class=compare>" in page
    assert "[[source]]" in page                       # the scenario text
    assert "Node 0, zone" in page                     # proc snapshots
    for p in POLICIES:
        assert p in page


def test_single_run_report(cmp_dir):
    from spbsim.report.html import write_report
    out, _ = cmp_dir
    run = out / "stock" / "seed1"
    page = open(write_report(str(run)), encoding="utf-8").read()
    figs = run / "figures"
    for stem in ("timeseries", "pageblock_map", "claim_steal"):
        assert png_size(figs / f"{stem}.png")[0] > 0
    assert png_size(figs / "timeseries.png") == (1000, 960)
    assert page.count("<img ") == 3
    assert "http://" not in page and "https://" not in page
    assert "<table class=kv>" in page and "request checksum" in page


def test_pageblock_map_on_a_machine(tmp_path):
    from spbsim.machine import Machine
    from spbsim.report.figures import C_FREE, classify_pageblocks, pageblock_map
    m = Machine(memory="1G", cpus=1)
    paths = pageblock_map(m, str(tmp_path / "map"))
    assert sorted(os.path.basename(p) for p in paths) == ["map.png", "map.svg"]
    png_size(tmp_path / "map.png")
    cls = classify_pageblocks(m.mem.pb_mt, m.mem.pb_flags, m.mem.pb_zone)
    assert (cls == C_FREE).sum() > 0


def test_report_bad_input(tmp_path, cmp_dir):
    from spbsim.report.html import write_report
    with pytest.raises(ResultsError, match="no such results directory"):
        write_report(str(tmp_path / "nope"))
    out, _ = cmp_dir
    run = tmp_path / "run"
    shutil.copytree(out / "stock" / "seed1", run)
    os.remove(run / "summary.json")
    with pytest.raises(ResultsError, match="missing summary.json"):
        write_report(str(run))
    shutil.copytree(out / "stock" / "seed2", tmp_path / "run2")
    s = json.loads((tmp_path / "run2" / "summary.json").read_text())
    s["format_version"] = 99
    (tmp_path / "run2" / "summary.json").write_text(json.dumps(s))
    with pytest.raises(ResultsError, match="newer"):
        write_report(str(tmp_path / "run2"))
    assert issubclass(ResultsError, SpbsimError)


def test_cli_commands(tmp_path, cmp_dir):
    import click
    from click.testing import CliRunner
    from spbsim.report.cli_cmds import compare, report
    out, _ = cmp_dir

    @click.group()
    def g():
        pass
    g.add_command(compare)
    g.add_command(report)
    r = CliRunner().invoke(g, ["report", str(out / "stock_defrag" / "seed2")])
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith("report.html")
    r = CliRunner().invoke(g, ["report", str(tmp_path / "missing")])
    assert isinstance(r.exception, ResultsError)
    r = CliRunner().invoke(g, ["compare", "x.toml", "--set", "novalue"])
    assert isinstance(r.exception, SpbsimError) and "KEY=VALUE" in str(r.exception)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="headless check needs Debian's chromium, not installed")
def test_report_renders_in_chromium(cmp_dir, tmp_path):
    from spbsim.report.html import write_report
    out, _ = cmp_dir
    page = write_report(str(out))
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1300,2000",
                        f"file://{os.path.abspath(page)}"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    png_size(tmp_path / "shot.png")
