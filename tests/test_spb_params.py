"""The [U] amounts of the SPB series are named switches with [SIM] defaults
(spb-series.md §5: progress, stop margin, cooldowns, evacuation caps, slab
shrink amount); each is validated and each changes what it names."""
import pytest

from spbsim import Machine
from spbsim.errors import ConfigError
from spbsim.mm.spb.params import SPB_PRESETS, SPB_SWITCHES

from test_spb_alloc import KERNEL, free_block, full, pb, stat, taint_slot

AMOUNTS = {"slab_shrink_div": 8, "evacuate_for_order_cap": 8, "evacuate_phase_blocks": 8,
           "deferred_evacuation_throttle_ms": 100, "defrag_progress_min_free": 1,
           "defrag_stop_extra_pb": 1, "defrag_progress_cooldown_ms": 0}


def test_amount_switches_have_the_sim_defaults_in_every_preset():
    for preset, sw in SPB_PRESETS.items():
        for name, default in AMOUNTS.items():
            assert sw[name] == default, (preset, name)
    m = Machine("1G", cpus=1, spb="v1", spb_set={"slab_shrink_div": 3,
                                                 "defrag_progress_cooldown_ms": 0})
    assert int(m.mem.spb.cfg[SPB_SWITCHES["slab_shrink_div"][0]]) == 3
    assert int(m.mem.spb.cfg[SPB_SWITCHES["evacuate_for_order_cap"][0]]) == 8


@pytest.mark.parametrize("name,value,msg", [
    ("slab_shrink_div", 0, "allowed 1 to"),
    ("evacuate_phase_blocks", "many", "expected an integer"),
    ("defrag_progress_min_free", True, "expected an integer"),
    ("slab_shrink_div", 8.7, "expected an integer"),
    ("defrag_stop_extra_pb", -1, "allowed 0 to 512"),
    ("deferred_evacuation_throttle_ms", 10 ** 9, "allowed 0 to 3600000"),
])
def test_amount_switches_reject_bad_values(name, value, msg):
    with pytest.raises(ConfigError, match=f"spb.{name}=.*{msg}"):
        Machine("1G", cpus=1, spb="v1", spb_set={name: value})


def _defrag_once(min_free, **sw):
    """One defrag run of a tainted SPB that can empty pageblocks (slot 3 is
    free room); returns (machine, slot)."""
    m = full("v1", spb_set=dict(sw, defrag_progress_min_free=min_free))
    taint_slot(m, 2, k=10)
    for k in range(512):
        free_block(m, pb(m, 3, k))
    m.mem.cur[1] = 10 ** 9
    m.alloc(0, KERNEL)                       # react: below high water -> queued
    assert m.mem.spb.defrag_state[2] == 1
    m.spb_run_pending()
    return m, 2


def test_defrag_progress_min_free_decides_what_counts_as_progress():
    m, i = _defrag_once(1, defrag_budget=4)
    s = m.mem.spb
    gained = int(s.nr_free[i]) - int(s.defrag_start_nr_free[i])
    assert 1 <= gained < 100
    assert s.defrag_last_no_progress_ns[i] < 0           # progress: never stamped
    m2, _ = _defrag_once(100, defrag_budget=4)           # the same run, a stricter rule
    assert m2.mem.spb.defrag_last_no_progress_ns[i] == 10 ** 9
    assert stat(m2, "spb_defrag_no_progress") == 1 and stat(m, "spb_defrag_no_progress") == 0
    m.check()


@pytest.mark.parametrize("cooldown_ms,kicked", [(0, True), (1000, False)])
def test_defrag_progress_cooldown_gates_the_next_run(cooldown_ms, kicked):
    m, i = _defrag_once(1, defrag_budget=1, defrag_progress_cooldown_ms=cooldown_ms)
    s = m.mem.spb
    assert s.defrag_last_no_progress_ns[i] < 0            # the run made progress
    kicks = stat(m, "spb_defrag_kicks")
    m.mem.cur[1] = 10 ** 9 + 500_000_000                  # 0.5 s later, still below start
    m.alloc(0, KERNEL)
    assert (stat(m, "spb_defrag_kicks") == kicks + 1) is kicked
    m.mem.cur[1] = 10 ** 9 + 2_000_000_000                # past any cooldown
    m.alloc(0, KERNEL)
    assert stat(m, "spb_defrag_kicks") >= kicks + 1


SLAB_SCENARIO = """
[scenario]
name = "slab"
memory = "3G"
cpus = 2
duration = "7s"
seed = 1

[[source]]
name = "cache"
kind = "pagecache"
rate = "450MB/s"
lifetime = "inf"

[[source]]
name = "slab"
kind = "slab_reclaimable"
rate = 3000
lifetime = "inf"

[[source]]
name = "kmalloc"
kind = "unmovable"
rate = 3000
lifetime = {dist = "exp", mean = "5s"}
"""


def test_slab_shrink_div_sets_how_much_one_shrink_frees():
    """Page cache fills the machine, so tainted SPBs sit below the high-water
    mark and queue_spb_slab_shrink() runs; a smaller divisor frees more slab
    per run and leaves less of it."""
    from spbsim.engine.run import Simulation
    from spbsim.scenario import scenario_from_text
    sc = scenario_from_text(SLAB_SCENARIO, "slab.toml")
    res = {}
    for div in (2, 64):
        r = Simulation(sc, policy=f"spb:v1,slab_shrink_div={div}").run()
        st = r["spb_allocator"]["stats"]
        assert st["spb_slab_shrinks"] > 0
        res[div] = (st["spb_slab_shrunk_pages"] / st["spb_slab_shrinks"],
                    r["sources"]["slab"]["pages_now"])
    assert res[2][0] > 4 * res[64][0]          # pages freed per shrink run
    assert res[2][1] < res[64][1]              # slab left at the end


def test_defrag_stop_extra_pb_sets_how_far_past_the_reserve_a_run_goes():
    """The run rechecks the stop condition after each pageblock: with a
    larger margin above the reserve it empties more pageblocks (budget 64)."""
    done = {}
    for extra in (0, 8):
        m, i = _defrag_once(1, defrag_budget=64, defrag_stop_extra_pb=extra)
        done[extra] = (stat(m, "spb_defrag_pageblocks"), int(m.mem.spb.nr_free[i]))
        m.check()
    assert done[8][0] > done[0][0]
    assert done[8][1] > done[0][1]
