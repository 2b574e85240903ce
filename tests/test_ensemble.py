"""The start state /proc does not show (spbsim.trace.start.draw_hidden_state),
``spbsim validate --start-seed`` and ``--ensemble`` (spbsim.trace.ensemble)."""
import json

import numpy as np
import pytest

from recording import write_recording
from test_validate import _run
from spbsim.machine import Machine
from spbsim.mm.const import CONFIG_PCP_BATCH_SCALE_MAX
from spbsim.mm.state import (PCP_ALLOC_FACTOR, PCP_BATCH, PCP_FLAGS, PCP_FREE_COUNT,
                             PCP_HIGH, PCPF_PREV_FREE_HIGH_ORDER)
from spbsim.trace import ensemble as E
from spbsim.trace import start as S
from spbsim.trace import validate as V


def _lists(m):
    """Every buddy free list, head to tail, by (list, order, migratetype)."""
    out = {}
    for L, o, t in zip(*np.nonzero(m.fa_head >= 0)):
        p, seq = int(m.fa_head[L, o, t]), []
        while p >= 0:
            seq.append(p)
            p = int(m.pg_next[p])
        out[(int(L), int(o), int(t))] = seq
    return out


def _fragmented(seed=3):
    machine = Machine("1G", cpus=2, seed=seed)
    rng = np.random.default_rng(seed)
    held = [machine.alloc(0) for _ in range(8000)]
    for i in rng.permutation(len(held))[:5000]:
        machine.free(held[i])
    machine.drain_pcp()
    return machine


def test_hidden_state_draw_is_seeded_and_keeps_the_lists_valid():
    a, b, c = _fragmented(), _fragmented(), _fragmented()
    before = _lists(a.mem)
    assert max(len(v) for v in before.values()) > 10
    da = S.draw_hidden_state(a, 7)
    db = S.draw_hidden_state(b, 7)
    S.draw_hidden_state(c, 8)
    assert da == db
    assert np.array_equal(a.mem.pcp, b.mem.pcp) and np.array_equal(a.mem.pg_next, b.mem.pg_next)
    assert not np.array_equal(a.mem.pg_next, c.mem.pg_next)
    after = _lists(a.mem)
    # the same blocks on the same lists, in another order
    assert {k: sorted(v) for k, v in after.items()} == {k: sorted(v) for k, v in before.items()}
    assert any(after[k] != before[k] for k in before if len(before[k]) > 2)
    assert da["free_lists_shuffled"] == sum(len(v) > 1 for v in before.values())
    for z in a.populated_zones():
        for cpu in range(a.mem.pcp.shape[1]):
            row = a.mem.pcp[z, cpu]
            assert 0 <= row[PCP_FREE_COUNT] <= S.HIDDEN_FREE_COUNT_BATCHES * row[PCP_BATCH]
            assert 0 <= row[PCP_ALLOC_FACTOR] <= CONFIG_PCP_BATCH_SCALE_MAX
            assert da["pcp"][f"{z}/{cpu}"][2] == int(bool(row[PCP_FLAGS]
                                                          & PCPF_PREV_FREE_HIGH_ORDER))
    a.check()                       # DEBUG_VM: list links and counts still agree
    for _ in range(3000):           # and the allocator runs on them
        a.alloc(0)
    a.check()


def test_v61_draw_is_a_free_factor_within_its_range():
    """The v6.1 model keeps pcp->free_factor (a shift count) in the
    free_count slot and has no alloc_factor or PCPF_PREV_FREE_HIGH_ORDER: a
    draw stays within the factors nr_pcp_free() reaches.  The old draw put
    a 6.12 free_count (up to 2 batches) there: batch << 100 and free_high
    armed on every list."""
    assert S.free_factor_max(63, 378) == 3          # 63, 126, 252 < 315; 504 >= 315
    assert S.free_factor_max(63, 100) == 0
    assert S.free_factor_max(31, 9018) == 5         # 6.1.y: at most CONFIG_PCP_BATCH_SCALE_MAX
    m = Machine("1G", cpus=2, version="6.1")
    flags = m.mem.pcp[:, :, PCP_FLAGS].copy()
    d = S.draw_hidden_state(m, 5)
    seen = set()
    for z in m.populated_zones():
        for cpu in range(m.mem.pcp.shape[1]):
            row = m.mem.pcp[z, cpu]
            fmax = S.free_factor_max(int(row[PCP_BATCH]), int(row[PCP_HIGH]))
            assert 0 <= row[PCP_FREE_COUNT] <= fmax
            assert row[PCP_ALLOC_FACTOR] == 0
            assert d["pcp"][f"{z}/{cpu}"] == [int(row[PCP_FREE_COUNT]), 0, 0]
            seen.add(int(row[PCP_FREE_COUNT]))
    assert np.array_equal(m.mem.pcp[:, :, PCP_FLAGS], flags)
    assert len(seen) > 1
    for _ in range(3000):
        m.free(m.alloc(0))
    m.check()


@pytest.fixture
def rec(tmp_path):
    return write_recording(tmp_path / "rec")


def test_validate_start_seed_is_deterministic_and_keeps_the_stream(rec):
    plain = V.validate(rec)
    one = V.validate(rec, start_seed=1)
    again = V.validate(rec, start_seed=1)
    assert one["start_seed"] == 1 and plain["start_seed"] is None
    assert one["whatif"]["hidden"]["seed"] == 1 and plain["whatif"]["hidden"] is None
    assert one["whatif"]["hidden"]["free_lists_shuffled"] > 0
    assert one["rows"] == again["rows"]
    assert one["whatif"]["checksum"] == plain["whatif"]["checksum"]
    other = V.validate(rec, start_seed=2)
    assert other["whatif"]["hidden"] != one["whatif"]["hidden"]


def _member(seed, within, ge9, fails, ok):
    return {"seed": seed, "within_targets": within,
            "targets_met": {"ge9": ge9, "l1": 1, "pageblocks": 2, "zone_snapshots": 2,
                            "failures": 1},
            "sim_failures": fails, "oom_sim": 0, "checksum": "c",
            "end": {"Normal": {"ge9_sim": ge9 * 10, "ge9_real": 15, "l1_pct": 5.0,
                               "ok_pb": True}},
            "zone_ok": {"1:Normal": [ok, True, True], "2:Normal": [True, False, None]},
            "snapshot_ok": {"1": ok, "2": False}}


def test_spread_by_hand():
    sp = E.spread([_member(None, 1, 1, 6, True), _member(1, 0, 2, 300, False),
                   _member(2, 1, 1, 0, True)])
    assert sp["members"] == 3
    assert sp["counts"]["sim_failures"] == {"min": 0, "median": 6, "max": 300, "base": 6}
    assert sp["counts"]["ge9"] == {"min": 1, "median": 1, "max": 2, "base": 1}
    assert sp["end"]["Normal"]["ge9_sim"] == {"min": 10, "median": 10, "max": 20, "base": 10}
    zs = sp["zone_snapshots"]
    assert zs["ge9"] == {"all": 1, "any": 2, "of": 2}
    assert zs["l1"] == {"all": 1, "any": 1, "of": 2}
    assert zs["pb"] == {"all": 2, "any": 2, "of": 2}       # None: no real value, not missed
    assert zs["snapshots_within"] == {"all": 0, "any": 1, "of": 2}
    text = E.format_ensemble({"recording": "r", "label": "l", "policy": "p", "draws": 2,
                              "spread": sp})
    assert "sim failures               6 [0..300]" in text
    # members from before the failure log have no near count: no line
    assert "near the kernel's" not in text
    members = [_member(None, 1, 1, 6, True), _member(1, 0, 2, 300, False),
               _member(2, 1, 1, 0, True)]
    for m, near in zip(members, (0, 250, 0)):
        m["failures_near"] = near
    sp = E.spread(members)
    assert sp["counts"]["failures_near"] == {"min": 0, "median": 0, "max": 250, "base": 0}
    text = E.format_ensemble({"recording": "r", "label": "l", "policy": "p", "draws": 2,
                              "spread": sp})
    assert "    near the kernel's (2 s)  0 [0..250]" in text


def _state(nr, unmovable=5):
    return {"nr_free": nr, "pageblocks": {"Unmovable": unmovable, "Movable": 100}}


def test_resolution_by_hand():
    """A zone-snapshot is resolved for a target when every run meets it
    against every other; 'met' counts the run as recorded against the kernel
    there."""
    same = [0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 20]
    near = [0, 0, 0, 0, 0, 0, 0, 0, 2, 9, 20]          # 1,024 of 25,600 pages off: 4 %
    far = [4000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20]        # L1 and 2 MB units far off
    members = [_member(None, 1, 1, 6, True), _member(1, 0, 2, 300, False),
               _member(2, 1, 1, 0, True)]
    for m, two, pb in zip(members, (same, near, far), (5, 5, 30)):
        m["zone_state"] = {"1:Normal": _state(same), "2:Normal": _state(two, pb)}
    res = E.resolution(members)
    # 1:Normal: identical runs resolve every target; the base meets all three
    # 2:Normal: the third run is off in L1, 2 MB units and Unmovable blocks
    assert res == {"ge9": {"resolved": 1, "met": 1, "of": 2},
                   "l1": {"resolved": 1, "met": 1, "of": 2},
                   "pb": {"resolved": 1, "met": 1, "of": 2}}
    members[2]["zone_state"]["2:Normal"] = _state(near)
    res = E.resolution(members)
    # now 2:Normal is resolved too, and there the base misses L1 (zone_ok False)
    assert res["l1"] == {"resolved": 2, "met": 1, "of": 2}
    assert res["ge9"] == {"resolved": 2, "met": 2, "of": 2}
    assert res["pb"] == {"resolved": 2, "met": 2, "of": 2}      # None: not missed
    sp = E.spread(members)
    assert sp["resolution"] == res
    text = E.format_ensemble({"recording": "r", "label": "l", "policy": "p", "draws": 2,
                              "spread": sp})
    assert "met there as recorded: ge9 2/2 of 2; l1 2/1 of 2; pb 2/2 of 2" in text
    assert E.resolution(members[:1]) is None
    del members[1]["zone_state"]
    assert E.resolution(members) is None


def test_ensemble_on_a_local_cluster(rec, capsys):
    V.validate(rec)                 # compiled and cached before the workers load it
    code, out, err = _run(["validate", str(rec), "--ensemble", "2", "--workers", "2",
                           "--json"], capsys)
    assert code == 0, err
    ens = json.loads(out)
    assert [m["seed"] for m in ens["members"]] == [None, 1, 2]
    assert ens["spread"]["members"] == 3
    plain = V.validate(rec)
    assert ens["members"][0]["within_targets"] == plain["summary"]["within_targets"]
    assert ens["members"][0]["checksum"] == plain["whatif"]["checksum"]
    single = V.validate(rec, start_seed=2)
    assert ens["members"][2] == E.member_summary(single)
    res = ens["spread"]["resolution"]
    assert set(res) == {"ge9", "l1", "pb"}
    assert all(0 <= v["met"] <= v["resolved"] <= v["of"] == ens["spread"]["zone_snapshots"]["l1"]["of"]
               for v in res.values())


@pytest.mark.parametrize("extra", [["--out", "x"], ["--start-seed", "3"], ["--start-seed", "0"],
                                   ["--check"]])
def test_ensemble_refuses_single_run_options(rec, capsys, extra):
    code, _, err = _run(["validate", str(rec), "--ensemble", "2"] + extra, capsys)
    assert code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("spbsim: error: --ensemble runs many")


@pytest.mark.parametrize("extra,msg", [(["--workers", "0"], "--workers 0: needs at least one"),
                                       (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
                                        "--workers is for the local cluster")])
def test_ensemble_worker_options(rec, capsys, extra, msg):
    code, _, err = _run(["validate", str(rec), "--ensemble", "2"] + extra, capsys)
    assert code == 2 and err.startswith(f"spbsim: error: {msg}"), err


def test_negative_start_seed(rec, capsys):
    code, _, err = _run(["validate", str(rec), "--start-seed", "-1"], capsys)
    assert code == 2 and err.strip() == "spbsim: error: --start-seed -1: must be >= 0"


def test_workers_without_ensemble(rec, capsys):
    code, _, err = _run(["validate", str(rec), "--workers", "2"], capsys)
    assert code == 2 and "go with --ensemble" in err


def test_ensemble_on_a_dask_scheduler_and_worker(rec, tmp_path):
    """The cluster path: `dask scheduler` and one `dask worker` on 127.0.0.1."""
    from test_sweep import DaskCluster
    V.validate(rec)                 # compiled and cached before the worker loads it
    with DaskCluster(tmp_path) as cl:
        ens = E.validate_ensemble(rec, 1, scheduler=cl.address)
    assert [m["seed"] for m in ens["members"]] == [None, 1]
    assert ens["members"][1] == E.member_summary(V.validate(rec, start_seed=1))


def test_ensemble_bad_trace_line_is_one_line(tmp_path, capfd):
    """A malformed trace line: the run's message with its seed, exit 2, and no
    traceback from the worker either."""
    rec = write_recording(tmp_path / "rec")
    t = rec / "trace.txt"
    lines = t.read_text().splitlines()
    i = next(k for k, x in enumerate(lines) if "mm_page_alloc:" in x)
    lines[i] = lines[i].replace("order=0", "order=zz")
    t.write_text("\n".join(lines) + "\n")
    # capfd: the worker processes write to the same stderr
    code, _, err = _run(["validate", str(rec), "--ensemble", "1", "--workers", "1"], capfd)
    assert code == 2
    assert "Traceback" not in err and "Compute Failed" not in err
    assert err.strip().splitlines()[-1] == (
        f"spbsim: error: ensemble run as recorded: {t}:{i + 1}: mm_page_alloc: field 'order': "
        f"expected integer, got 'zz'")


def test_timer_phases_are_a_draw_of_their_own():
    """kcompactd's proactive check and vmstat_update's work: where in their
    periods they stand at the start marker is drawn in (0, period], seeded."""
    d = S.draw_timer_phases(3, 500_000_000, 1_000_000_000)
    assert d == S.draw_timer_phases(3, 500_000_000, 1_000_000_000)
    assert 0 < d["kcompactd_ns"] <= 500_000_000 and 0 < d["vmstat_update_ns"] <= 1_000_000_000
    seen = {S.draw_timer_phases(s, 500_000_000, 1_000_000_000)["kcompactd_ns"] for s in range(20)}
    assert len(seen) == 20
