"""The Python API, determinism, invariants over long random streams, bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from spbsim import ConfigError, FreeError, Machine
from spbsim.bench import _order_cdf, bench_stream, seed_rng
from spbsim.mm import gfp as G
from spbsim.mm.state import EV, ZS_MANAGED
from spbsim.observe import procfs


@pytest.mark.parametrize("size", ["3Q", "0G", "8T", "1.3G", "", "-1G", "512M"])
def test_bad_memory_sizes_are_named(size):
    with pytest.raises(ConfigError) as e:
        Machine(size)
    assert "memory" in str(e.value)


@pytest.mark.parametrize("kw", [dict(cpus=0), dict(version="5.4"), dict(watermark_scale_factor=0),
                                dict(min_free_kbytes=10), dict(low_memory="100M"),
                                dict(holes=[("1G", "1M")]), dict(reserved=[("3G", "2G")])])
def test_bad_machine_parameters(kw):
    with pytest.raises(ConfigError):
        Machine("2G", **kw)


def test_bad_orders_and_frees():
    m = Machine("1G", cpus=2)
    with pytest.raises(ConfigError, match="MAX_PAGE_ORDER"):
        m.alloc(11)
    with pytest.raises(ConfigError, match="cpu"):
        m.alloc(0, cpu=2)
    with pytest.raises(ConfigError, match="gfp"):
        m.alloc(0, "GFP_BOGUS")
    p = m.alloc(2, "GFP_KERNEL|__GFP_COMP")
    with pytest.raises(FreeError, match="order 2, not 1"):
        m.free(p, 1)
    m.free(p, 2)
    with pytest.raises(FreeError, match="double free"):
        m.free(p, 2)
    with pytest.raises(FreeError, match="not a page"):
        m.free(1 << 40)
    m.check()


def test_gfp_names_round_trip():
    for mask in (G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO, G.GFP_TRANSHUGE,
                 G.GFP_ATOMIC | G.__GFP_NOWARN, G.GFP_NOWAIT):
        assert G.parse_gfp(G.format_gfp(mask)) == mask
    assert G.gfp_migratetype(G.GFP_KERNEL | G.__GFP_RECLAIMABLE) == 2
    assert G.gfp_migratetype(G.GFP_HIGHUSER_MOVABLE) == 1


def test_proc_outputs_parse_back():
    m = Machine("4G", cpus=2)
    names, nr = procfs.parse_buddyinfo(m.buddyinfo())
    assert names == ["DMA", "DMA32", "Normal"]
    np.testing.assert_array_equal(nr, m.mem.nr_free)
    pti = procfs.parse_pagetypeinfo(m.pagetypeinfo())
    np.testing.assert_array_equal(pti["block_count"], m.block_counts())
    assert pti["block_count"].sum() == (m.mem.pb_zone >= 0).sum()
    procfs.parse_index_file(m.unusable_index())
    procfs.parse_index_file(m.extfrag_index())
    zi = procfs.parse_zoneinfo(m.zoneinfo())
    assert zi["Normal"]["managed"] == int(m.mem.zstat[2, ZS_MANAGED])
    vm = procfs.parse_vmstat(m.vmstat())
    assert vm["nr_free_pages"] == sum(zi[z]["free"] for z in zi)


def _stream(seed, n=200_000, memory="2G", version="recent"):
    m = Machine(memory, cpus=4, seed=seed, version=version)
    target = int(m.mem.zstat[:, ZS_MANAGED].sum() * 0.9)
    st_ = np.zeros(5, np.int64)
    lp = np.empty(target + 16, np.int64)
    lo = np.empty(target + 16, np.int8)
    rng = seed_rng(seed)
    bench_stream(m.mem, -1, rng, target, 4, lp, lo, st_, _order_cdf())
    bench_stream(m.mem, n, rng, target, 4, lp, lo, st_, _order_cdf())
    return m


def test_a_fill_that_cannot_reach_its_target_gives_up():
    """1 GB cannot hold 90 % of its managed pages in the stream's blocks: the
    fill stops after FILL_MAX_FAILURES failed requests (it made a million,
    through the slow path, in 8 s)."""
    from spbsim.bench import FILL_MAX_FAILURES
    m = Machine("1G", cpus=4)
    target = int(m.mem.zstat[:, ZS_MANAGED].sum() * 0.9)
    st_ = np.zeros(5, np.int64)
    lp = np.empty(target + 16, np.int64)
    lo = np.empty(target + 16, np.int8)
    bench_stream(m.mem, -1, seed_rng(1), target, 4, lp, lo, st_, _order_cdf())
    assert st_[1] < target and st_[4] == FILL_MAX_FAILURES + 1


def test_same_seed_same_state():
    a, b = _stream(7), _stream(7)
    assert a.checksum() == b.checksum()
    assert a.buddyinfo() == b.buddyinfo()
    assert a.pagetypeinfo() == b.pagetypeinfo()
    assert _stream(8).checksum() != a.checksum()


@pytest.mark.parametrize("version", ["recent", "6.12", "6.1"])
def test_invariants_after_a_long_mixed_stream(version):
    m = _stream(3, n=1_000_000, version=version)
    m.check()
    m.drain_pcp()
    m.check()


OPS = st.lists(st.tuples(st.integers(0, 10), st.sampled_from([
    G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL | G.__GFP_RECLAIMABLE, G.GFP_ATOMIC,
    G.GFP_NOWAIT, G.GFP_TRANSHUGE_LIGHT, G.GFP_DMA32 | G.GFP_KERNEL]), st.integers(0, 3),
    st.booleans()), min_size=50, max_size=400)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, version=st.sampled_from(["recent", "6.12", "6.1"]), defrag=st.booleans(),
       pcp=st.booleans())
def test_invariants_hold_for_any_op_sequence(ops, version, defrag, pcp):
    """DEBUG_VM invariants after arbitrary interleavings of allocs and frees of
    every order and gfp class, on a machine small enough to run out."""
    m = Machine("1G", cpus=4, version=version, defrag_mode=defrag, pcp=pcp,
                min_free_kbytes=1024, early_unmovable=0)
    live = []
    for order, gfp, cpu, free in ops:
        if free and live:
            p, o = live.pop(len(live) // 2)
            m.free(p, o, cpu=cpu)
        else:
            # big requests repeatedly, to run the machine out of memory
            for _ in range(8 if order >= 9 else 1):
                p = m.alloc(order, gfp, cpu=cpu)
                if p is not None:
                    live.append((p, order))
    m.check()
    assert m.mem.ev_n[1] == 0


def test_tracepoints_render_and_parse_back():
    from spbsim.trace.tracefmt import format_ev_log
    from spbsim.trace.ftrace import parse_line
    m = Machine("1G", cpus=2, trace=True, trace_capacity=100_000, early_unmovable=0)
    p = m.alloc(0, G.GFP_KERNEL)      # a whole-block claim: extfrag + zone_locked
    m.free(p, 0)
    ev = m.trace_records()
    kinds = set(ev[:, 0])
    assert {EV["mm_page_alloc"], EV["mm_page_free"], EV["mm_page_alloc_zone_locked"],
            EV["mm_page_alloc_extfrag"]} <= kinds
    lines = list(format_ev_log(ev))
    assert len(lines) == len(ev)
    recs = [parse_line(ln) for ln in lines]
    alloc = [r for r in recs if type(r).__name__ == "MmPageAlloc"][0]
    assert alloc.pfn == p and alloc.order == 0 and alloc.migratetype == 0
    assert alloc.gfp_flags == G.GFP_KERNEL


def test_pure_python_execution_matches_compiled(tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the same functions as plain Python: same state."""
    code = ("import numpy as np; from spbsim import Machine\n"
            "m = Machine('1G', cpus=2, seed=4, early_unmovable=1<<20)\n"
            "rng = np.random.default_rng(4)\n"
            "o = rng.integers(0, 4, 300); g = np.where(rng.random(300) < .7, 0x100cca, 0xcc0)\n"
            "r = m.run_ops(o, g, cpu=np.arange(300) % 2)\n"
            "m.run_ops(o[::2], 0, pfns=r[::2])\n"
            "print(m.checksum())\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    slow = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=600)
    assert slow.returncode == 0, slow.stderr
    fast = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert fast.returncode == 0, fast.stderr
    assert slow.stdout == fast.stdout
