"""Results directories: writer round trip, interruption, loader errors."""
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from spbsim.errors import SpbsimError
from spbsim.results import FORMAT_VERSION, Results, ResultsError, ResultsWriter, load


def rows(n):
    for i in range(n):
        yield {"t": i * 0.5, "free_pages": 1000 - i, "fails": np.int64(i // 3),
               "frac": np.float32(i / 10)}


def test_round_trip(tmp_path):
    d = tmp_path / "run"
    params = {"memory": "4G", "seed": np.int64(1), "orders": np.arange(3)}
    with ResultsWriter(d, params, "[scenario]\nname = 'x'\n", flush_rows=4) as w:
        for r in rows(10):
            w.append_sample(r)
        w.write_text("proc/buddyinfo", "Node 0, zone   Normal 1 2 3\n")
        w.write_text("proc/vmstat", "nr_free_pages 5\n")
        w.write_json("extra/census.json", {"a": 1})
        w.close({"ops": 123, "ratio": float("inf")})
    assert not any(n.endswith(".tmp") or ".tmp." in n for n in os.listdir(d))
    assert pq.ParquetFile(d / "timeseries.parquet").num_row_groups == 3   # 4 + 4 + 2 rows
    r = load(d)
    assert isinstance(r, Results) and r.complete
    ts = r.timeseries
    assert list(ts.columns) == ["t", "free_pages", "fails", "frac"]
    assert [str(x) for x in ts.dtypes] == ["float64", "int64", "int64", "float64"]
    assert len(ts) == 10 and ts["free_pages"].tolist() == list(range(1000, 990, -1))
    assert ts["t"].iloc[-1] == 4.5
    assert r.summary == {"format_version": FORMAT_VERSION, "complete": True, "ops": 123,
                         "ratio": "inf", "samples": 10}
    assert r.params == {"memory": "4G", "seed": 1, "orders": [0, 1, 2]}
    assert r.proc == {"buddyinfo": "Node 0, zone   Normal 1 2 3\n",
                      "vmstat": "nr_free_pages 5\n"}
    assert r.scenario_text == "[scenario]\nname = 'x'\n"
    assert json.loads((d / "extra" / "census.json").read_text()) == {"a": 1}


def test_summary_written_at_start(tmp_path):
    w = ResultsWriter(tmp_path / "r", {})
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["complete"] is False and s["format_version"] == FORMAT_VERSION
    w.close({})


def test_interrupted_writer_is_loadable(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with ResultsWriter(d, {"seed": 1}, None, flush_rows=3) as w:
            for i, r in enumerate(rows(7)):
                w.append_sample(r)
                w.update_summary(ops=i)
            raise KeyboardInterrupt
    assert w.closed
    r = load(d)
    assert r.complete is False
    assert r.summary["interrupted"] == "KeyboardInterrupt"
    assert r.summary["ops"] == 6 and r.summary["samples"] == 7
    assert len(r.timeseries) == 7                    # buffered rows flushed too
    assert not (d / "timeseries.parquet.tmp").exists()


def test_interrupted_before_any_sample(tmp_path):
    d = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with ResultsWriter(d, {}, None):
            raise RuntimeError("boom")
    r = load(d)
    assert not r.complete and r.summary["error"] == "boom"
    assert len(r.timeseries) == 0


def test_exit_without_close_is_complete(tmp_path):
    with ResultsWriter(tmp_path / "r", {}) as w:
        w.append_sample({"t": 0.0})
        w.update_summary(ops=3)
    r = load(tmp_path / "r")
    assert r.complete and r.summary["ops"] == 3


def test_close_incomplete_explicitly(tmp_path):
    w = ResultsWriter(tmp_path / "r", {})
    w.close({"reason": "oom"}, complete=False)
    w.close({})                                       # second close: no-op
    assert load(tmp_path / "r").complete is False


def test_schema_is_fixed_by_first_row(tmp_path):
    w = ResultsWriter(tmp_path / "r", {})
    w.append_sample({"t": 0.0, "n": 1})
    with pytest.raises(ValueError, match="extra: \\['x'\\]"):
        w.append_sample({"t": 1.0, "n": 1, "x": 2})
    with pytest.raises(ValueError, match="missing: \\['n'\\]"):
        w.append_sample({"t": 1.0})
    with pytest.raises(TypeError, match="column 'n' is int64"):
        w.append_sample({"t": 1.0, "n": 1.5})
    w.append_sample({"t": 2, "n": 3})                 # ints into a float column are fine
    with pytest.raises(TypeError, match="expected an int or a float"):
        ResultsWriter(tmp_path / "s", {}).append_sample({"t": "now"})
    w.close({})
    assert load(tmp_path / "r").timeseries["t"].tolist() == [0.0, 2.0]
    with pytest.raises(ValueError):
        w.append_sample({"t": 3.0, "n": 1})


def test_write_text_stays_inside(tmp_path):
    w = ResultsWriter(tmp_path / "r", {})
    for bad in ("../x", "/etc/passwd", "."):
        with pytest.raises(ValueError):
            w.write_text(bad, "x")
    w.close({})


def test_rerun_removes_stale_files(tmp_path):
    d = tmp_path / "r"
    with ResultsWriter(d, {}, "old scenario") as w:
        w.append_sample({"t": 0.0, "old": 1})
        w.write_text("proc/old", "x")
    with ResultsWriter(d, {}, None) as w:
        w.append_sample({"t": 0.0})
    r = load(d)
    assert list(r.timeseries.columns) == ["t"]
    assert r.proc == {} and r.scenario_text is None


# ---------------------------------------------------------------- loader errors

def make(tmp_path):
    d = tmp_path / "r"
    with ResultsWriter(d, {"a": 1}) as w:
        w.append_sample({"t": 0.0})
    return d


def test_error_class():
    assert issubclass(ResultsError, SpbsimError)


def test_missing_directory(tmp_path):
    with pytest.raises(ResultsError, match="no such results directory"):
        load(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ResultsError, match="not a directory"):
        load(tmp_path / "f")


def test_missing_summary(tmp_path):
    d = make(tmp_path)
    os.remove(d / "summary.json")
    with pytest.raises(ResultsError, match="missing summary.json"):
        load(d)


def test_bad_summary_json(tmp_path):
    d = make(tmp_path)
    (d / "summary.json").write_text("{not json")
    with pytest.raises(ResultsError, match="summary.json: unreadable JSON"):
        load(d)


def test_missing_timeseries(tmp_path):
    d = make(tmp_path)
    os.remove(d / "timeseries.parquet")
    with pytest.raises(ResultsError, match="missing timeseries.parquet"):
        load(d)


def test_killed_run_reports_missing_timeseries(tmp_path):
    d = tmp_path / "r"
    w = ResultsWriter(d, {}, flush_rows=1)
    w.append_sample({"t": 0.0})                       # process "killed" here: never closed
    with pytest.raises(ResultsError, match="missing timeseries.parquet \\(the run did not finish\\)"):
        load(d)
    w.close({})


def test_unreadable_parquet(tmp_path):
    d = make(tmp_path)
    (d / "timeseries.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ResultsError, match="timeseries.parquet: unreadable Parquet file"):
        load(d)


@pytest.mark.parametrize("ver,what", [(FORMAT_VERSION + 1, "newer than this spbsim supports"),
                                      (0, "older than this spbsim supports"),
                                      (None, "no format_version"),
                                      ("1", "format_version '1' is not an integer"),
                                      (True, "format_version True is not an integer")])
def test_format_version(tmp_path, ver, what):
    d = make(tmp_path)
    s = json.loads((d / "summary.json").read_text())
    if ver is None:
        del s["format_version"]
    else:
        s["format_version"] = ver
    (d / "summary.json").write_text(json.dumps(s))
    with pytest.raises(ResultsError, match=what):
        load(d)


def test_params_optional(tmp_path):
    d = make(tmp_path)
    os.remove(d / "params.json")
    assert load(d).params == {}


def test_scenario_not_utf8(tmp_path):
    d = make(tmp_path)
    (d / "scenario.toml").write_bytes(b"name = '\xff\xfe'\n")
    with pytest.raises(ResultsError, match=r"scenario.toml: not UTF-8 text \(invalid start "
                                           r"byte at byte 8\)"):
        load(d)

