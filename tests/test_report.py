"""spbsim.report: paired comparison table, figures, the HTML report, CLI commands."""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from workloads import TINY_SCENARIO

from spbsim.errors import ConfigError, SpbsimError
from spbsim.report.compare import METRICS, CompareError, build_table, run_compare
from spbsim.results import ResultsError

SCENARIO = TINY_SCENARIO

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
    # in this process (jobs=1): the dask runner's path is test_sweep's
    # test_compare_runs_on_the_sweep_runner_with_run_option_names; two local
    # worker processes cost twice the cpu here for the same directory
    table = run_compare(str(path), POLICIES, seeds=2, out_dir=str(out), jobs=1, progress=False)
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
    with pytest.raises(ConfigError, match="spb:v9"):
        run_compare(str(p), ["stock", "spb:v9"], out_dir=str(tmp_path / "o"), progress=False)
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
    gifs = sorted(p.name for p in figs.glob("*.gif"))
    assert gifs == ["pageblock_map_anim_stock_defrag_seed1.gif",
                    "pageblock_map_anim_stock_seed1.gif"]
    page = open(html_path, encoding="utf-8").read()
    assert page.count("<img ") == len(pngs) + len(gifs)
    assert page.count("data:image/png;base64,") == len(pngs)
    assert page.count("data:image/gif;base64,") == len(gifs)
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
    assert (figs / "pageblock_map_anim.gif").is_file()
    # the map by polluting source only when a block is marked polluted at the end
    with np.load(run / "pageblocks.npz") as z:
        polluted = bool(z["pb_taint"].any())
    assert (figs / "taint_map.png").is_file() == polluted
    assert page.count("<img ") == 4 + polluted and page.count("data:image/gif;base64,") == 1
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


# ------------------------------------------------------------ pageblock snapshots and animation

def gif_frames(path):
    from PIL import Image
    with Image.open(path) as im:
        assert im.format == "GIF"
        return im.n_frames, im.size


def test_runs_save_pageblock_snapshots(cmp_dir):
    from spbsim.report.snapshots import load_pageblock_series, load_pageblocks
    out, _ = cmp_dir
    run = out / "stock" / "seed1"
    ser = load_pageblock_series(run)
    # 5 s sampled every 1 s: t = 0, 1, 2, 3, 4 and the final sample at 5 s
    assert ser["t_s"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    k, n = ser["pb_mt"].shape
    assert k == 6 and n == ser["pb_zone"].size == 1024          # 2 GiB of 2 MiB blocks
    # the last frame is the final state saved in pageblocks.npz
    end = load_pageblocks(run / "pageblocks.npz")
    assert (ser["pb_mt"][-1] == end["pb_mt"]).all()
    assert (ser["pb_flags"][-1] == end["pb_flags"]).all()
    # memory fills up: the first frame has more free blocks than the last
    from spbsim.report.figures import C_FREE, classify_pageblocks
    free = [(classify_pageblocks(ser["pb_mt"][i], ser["pb_flags"][i], ser["pb_zone"]) == C_FREE)
            .sum() for i in (0, -1)]
    assert free[0] > free[-1]


def test_animation_gif(cmp_dir, tmp_path):
    from spbsim.report.figures import pageblock_map_animation
    out, _ = cmp_dir
    run = out / "stock" / "seed1"
    a = tmp_path / "a.gif"
    assert pageblock_map_animation(run, str(a), fps=2) == [str(a)]
    n, size = gif_frames(a)
    assert n == 6 and size[0] == 800                # one frame per snapshot, 10 in x 80 dpi
    b = tmp_path / "sub" / "b.gif"
    pageblock_map_animation(str(run / "pageblocks_series.npz"), b, fps=2)
    assert a.read_bytes() == b.read_bytes()         # deterministic
    assert not list(tmp_path.glob("*.tmp*"))


def test_animation_from_snapshot_list(tmp_path):
    from spbsim.mm.const import MIGRATE_UNMOVABLE, PB_all_free, PB_has_unmovable
    from spbsim.report.figures import pageblock_map_animation
    n = 1024                                          # two superpageblocks
    frames = []
    for k in range(4):
        flags = np.full(n, PB_all_free, np.uint8)
        flags[:100 * k] = PB_has_unmovable
        frames.append((float(k), {"pb_mt": np.full(n, MIGRATE_UNMOVABLE, np.uint8),
                                  "pb_flags": flags, "pb_zone": np.zeros(n, np.int8)}))
    out = tmp_path / "m.gif"
    pageblock_map_animation(frames, out)
    from PIL import Image
    with Image.open(out) as im:
        assert im.n_frames == 4
        firsts = []
        for i in range(4):                    # the frames differ: unmovable blocks grow
            im.seek(i)
            firsts.append(np.asarray(im.convert("RGB")).tobytes())
    assert len(set(firsts)) == 4


def test_recorder_stride_and_final_frame(tmp_path):
    from types import SimpleNamespace
    from spbsim.report.snapshots import PageblockRecorder
    mem = SimpleNamespace(pb_mt=np.zeros(8, np.uint8), pb_flags=np.zeros(8, np.uint8),
                          pb_zone=np.zeros(8, np.int8))
    rows = []
    rec = PageblockRecorder(SimpleNamespace(append_sample=rows.append, n_rows=0),
                            SimpleNamespace(mem=mem), n_samples=11, max_frames=5)
    assert rec.stride == 3
    for i in range(11):
        mem.pb_mt[:] = i
        rec.append_sample({"t_s": float(i)})
    assert len(rows) == 11 and rec.n_rows == 0            # rows and attributes forwarded
    assert rec.t_s == [0.0, 3.0, 6.0, 9.0]
    assert [int(a[0]) for a in rec.mt] == [0, 3, 6, 9]     # copies, not views
    from spbsim.report.snapshots import load_pageblock_series
    assert rec.save(tmp_path) == str(tmp_path / "pageblocks_series.npz")
    ser = load_pageblock_series(tmp_path)
    assert ser["t_s"].tolist() == [0.0, 3.0, 6.0, 9.0, 10.0]   # + the final state
    assert ser["pb_mt"][:, 0].tolist() == [0, 3, 6, 9, 10]


def test_mp4_without_ffmpeg_is_a_clear_error(cmp_dir, tmp_path, monkeypatch, capsys):
    import matplotlib.animation
    from spbsim.cli import main
    from spbsim.report.figures import AnimationError, pageblock_map_animation
    out, _ = cmp_dir
    run = out / "stock" / "seed1"
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if "ffmpeg" in str(cmd)
                        else real_which(cmd, *a, **k))
    with pytest.raises(AnimationError, match=r"writing MP4 needs ffmpeg, which is not on "
                                             r"PATH.*write a GIF instead: .*x\.gif"):
        pageblock_map_animation(run, str(tmp_path / "x.mp4"))
    assert not (tmp_path / "x.mp4").exists()
    # ffmpeg "on PATH" but matplotlib cannot use it: the same message
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: "/usr/bin/" + str(cmd))
    monkeypatch.setattr(matplotlib.animation.writers, "is_available", lambda name: False)
    with pytest.raises(AnimationError, match="needs ffmpeg"):
        pageblock_map_animation(run, str(tmp_path / "x.mp4"))
    # the CLI: one line, exit status 2, before any work
    with pytest.raises(SystemExit) as ex:
        main(["report", str(run), "--animate", str(tmp_path / "y.mp4")])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("spbsim: error: ") and "needs ffmpeg" in err and "y.gif" in err
    assert "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(AnimationError, match="unknown animation format '.avi'"):
        pageblock_map_animation(run, str(tmp_path / "x.avi"))


def test_cli_report_animate(cmp_dir, tmp_path, capsys):
    from spbsim.cli import main
    out, _ = cmp_dir
    main(["report", str(out), "--no-animation", "--animate", str(tmp_path / "cmp.gif"),
          "--fps", "2"])
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "report.html"), str(tmp_path / "cmp-stock.gif"),
                       str(tmp_path / "cmp-stock_defrag.gif")]
    for p in printed[1:]:
        assert gif_frames(p)[0] == 6
    assert "data:image/gif" not in (out / "report.html").read_text()
    main(["report", str(out)])                        # default: the GIFs are embedded again
    assert (out / "report.html").read_text().count("data:image/gif;base64,") == 2


# ------------------------------------------------------------ results-directory errors

def cli_error(args, capsys):
    """Run the CLI; it must exit 2 with one 'spbsim: error:' line, no traceback."""
    from spbsim.cli import main
    with pytest.raises(SystemExit) as ex:
        main(args)
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("spbsim: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def run_copy(cmp_dir, tmp_path):
    out, _ = cmp_dir
    d = tmp_path / "run"
    shutil.copytree(out / "stock" / "seed1", d, ignore=shutil.ignore_patterns("figures",
                                                                              "report.html"))
    return d


@pytest.fixture
def cmp_copy(cmp_dir, tmp_path):
    out, _ = cmp_dir
    d = tmp_path / "cmp"
    shutil.copytree(out, d, ignore=shutil.ignore_patterns("figures", "report.html"))
    return d


def test_report_missing_files(run_copy, capsys):
    d = str(run_copy)
    os.remove(run_copy / "timeseries.parquet")
    err = cli_error(["report", d], capsys)
    assert f"{d}: missing timeseries.parquet" in err
    os.remove(run_copy / "summary.json")
    err = cli_error(["report", d], capsys)
    assert f"{d}: missing summary.json" in err
    err = cli_error(["report", d + "-nope"], capsys)
    assert f"{d}-nope: no such results directory" in err


@pytest.mark.parametrize("ver,what", [(99, "format_version 99 is newer than this spbsim "
                                           "supports (1): upgrade spbsim"),
                                      (0, "format_version 0 is older than this spbsim "
                                          "supports (1): re-run the simulation"),
                                      ("1", "format_version '1' is not an integer")])
def test_report_format_version(run_copy, capsys, ver, what):
    s = json.loads((run_copy / "summary.json").read_text())
    s["format_version"] = ver
    (run_copy / "summary.json").write_text(json.dumps(s))
    err = cli_error(["report", str(run_copy)], capsys)
    assert f"{run_copy / 'summary.json'}: {what}" in err


def test_report_bad_pageblock_files(run_copy, capsys):
    (run_copy / "pageblocks.npz").write_bytes(b"PK\x03\x04 truncated")
    err = cli_error(["report", str(run_copy)], capsys)
    assert f"{run_copy / 'pageblocks.npz'}: unreadable .npz file" in err
    os.remove(run_copy / "pageblocks.npz")
    with open(run_copy / "pageblocks_series.npz", "wb") as f:
        np.savez(f, t_s=np.zeros(2))
    err = cli_error(["report", str(run_copy)], capsys)
    assert f"{run_copy / 'pageblocks_series.npz'}: missing arrays" in err
    with open(run_copy / "pageblocks_series.npz", "wb") as f:
        np.savez(f, format_version=np.int64(2), t_s=np.zeros(1), pb_mt=np.zeros((1, 4)),
                 pb_flags=np.zeros((1, 4)), pb_zone=np.zeros(4))
    err = cli_error(["report", str(run_copy)], capsys)
    assert "pageblocks_series.npz: format_version 2 is newer than this spbsim reads" in err
    os.remove(run_copy / "pageblocks_series.npz")
    err = cli_error(["report", str(run_copy), "--animate", "x.gif"], capsys)
    assert f"{run_copy}: missing pageblocks_series.npz" in err and "nothing to animate" in err
    from spbsim.cli import main
    main(["report", str(run_copy)])                   # without both: a report, no map
    assert "No pageblocks.npz" in (run_copy / "report.html").read_text()


def test_report_compare_dir_errors(cmp_copy, capsys):
    shutil.rmtree(cmp_copy / "stock_defrag" / "seed2")
    err = cli_error(["report", str(cmp_copy)], capsys)
    assert f"{cmp_copy / 'stock_defrag' / 'seed2'}: no such results directory" in err
    assert f"[run stock:defrag seed 2 listed in {cmp_copy / 'compare.json'}]" in err
    meta = json.loads((cmp_copy / "compare.json").read_text())
    assert meta["format_version"] == 1
    meta["format_version"] = 7
    (cmp_copy / "compare.json").write_text(json.dumps(meta))
    err = cli_error(["report", str(cmp_copy)], capsys)
    assert f"{cmp_copy / 'compare.json'}: format_version 7 is newer" in err
    (cmp_copy / "compare.json").write_text("{")
    err = cli_error(["report", str(cmp_copy)], capsys)
    assert f"{cmp_copy / 'compare.json'}: unreadable JSON" in err


def test_report_error_from_the_command_line(tmp_path):
    """The installed entry point: exit status 2, one line, no traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "spbsim.cli", "report", str(empty)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr == (f"spbsim: error: {empty}: missing summary.json (not a results "
                        f"directory, or the run was killed before writing it)\n")
    assert r.stdout == ""


def test_report_unwritable_target(run_copy, capsys):
    (run_copy / "report.html").mkdir()                # the page cannot replace a directory
    err = cli_error(["report", str(run_copy), "--no-animation"], capsys)
    assert err == (f"spbsim: error: {run_copy / 'report.html'}: Is a directory (while "
                   f"writing the report of {run_copy})\n")
    assert [p.name for p in run_copy.iterdir() if ".tmp" in p.name] == []
