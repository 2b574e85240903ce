"""Scenario files: built-ins, kind defaults, every error path, overrides,
lifetime sampling, rate_scale with phases and bursts, rates relative to memory."""
import math
import textwrap

import numpy as np
import pytest

from spbsim.errors import ConfigError, SpbsimError
from spbsim.mm import gfp as G
from spbsim.scenario import (KINDS, HUGETLB_1G_ORDER, Lifetime, Scenario, ScenarioError, Source,
                             builtin_scenarios, load_scenario, mean_block_bytes, parse_interval,
                             parse_rate, parse_time, scenario_from_text)

BASE = """
[scenario]
name = "t"
memory = "4G"
cpus = 4
duration = "100s"

[[source]]
name = "pc"
kind = "pagecache"
rate = 1000

[[source]]
name = "an"
kind = "anon"
rate = 500
lifetime = {dist = "exp", mean = "10s"}
"""


def write(tmp_path, text, name="kbuild.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def err(tmp_path, text, overrides=None):
    p = write(tmp_path, text)
    with pytest.raises(ScenarioError) as ei:
        load_scenario(str(p), overrides)
    return ei.value


# ---------------------------------------------------------------- built-ins

BUILTINS = ("devvm-256g", "kbuild", "webserver", "fragment-then-1g", "oracle-mixed")


def test_builtins_listed():
    b = builtin_scenarios()
    for name in BUILTINS:
        assert name in b and b[name].endswith(f"{name}.toml")


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads(name):
    sc = load_scenario(name)
    assert isinstance(sc, Scenario)
    assert sc.name == name
    assert sc.path and sc.path.endswith(f"{name}.toml")
    assert len(sc.description) > 200          # says what it imitates and what is guessed
    assert "GUESS" in sc.description
    assert sc.sources
    for s in sc.sources:
        assert abs(s.order_probs.sum() - 1) < 1e-12
        assert 0 <= s.start_s < s.stop_s <= sc.duration_s
    total = sum(sc.expected_requests().values())
    assert 5e5 < total < 5e7, total            # runs in reasonable wall time


def test_default_scenario_shape():
    sc = load_scenario("devvm-256g")
    # node 0 of a real server's e820 map: 1.75 GiB low + 254 GiB above 4 GiB, less
    # the 1 MiB firmware tail of the top pageblock
    assert sc.memory_map is not None and sc.memory_map.name == "epyc-snp-node0"
    assert sc.memory == "261886M" and sc.memory_bytes == 0x3fefe00000
    kinds = {s.kind for s in sc.sources}
    assert {"unmovable", "pagetable", "kernel_stack", "slab_reclaimable", "atomic",
            "pagecache", "anon", "thp", "hugetlb_1g"} <= kinds
    total = sum(sc.expected_requests().values())
    assert 1e7 <= total <= 5e7
    h = next(s for s in sc.sources if s.kind == "hugetlb_1g")
    assert h.start_s >= sc.duration_s / 2     # late in the run
    # memory demand exceeds the machine: reclaim must run
    live = 0.0
    for s in sc.sources:
        if s.kind == "hugetlb_1g":
            continue
        life = min(s.lifetime.mean_s, sc.duration_s)
        live += s.rate_per_s * s.mean_block_bytes * life
    assert live > sc.memory_bytes


def test_oracle_mixed_matches_recording():
    sc = load_scenario("oracle-mixed")
    assert sc.memory_bytes == 1536 << 20 and sc.cpus == 2 and sc.kernel_version == "6.12"
    assert [p.name for p in sc.phases] == ["setup", "files-ext4", "pressure", "release"]
    exp = sc.expected_requests()
    traced = sum(v for k, v in exp.items() if not k.startswith("setup"))
    assert 0.7e6 < traced < 1.3e6             # trace: 1,215,065 mm_page_alloc


# ---------------------------------------------------------------- kinds

def test_kinds_are_declared_once():
    """spbsim.workload.kinds is the one table of kinds: the scenario parser,
    the engine's kind codes and its fallback gfps all read it."""
    from spbsim.engine import sources as S
    from spbsim.engine import state as E
    from spbsim.workload import kinds as K
    assert KINDS is K.KINDS
    assert E.KIND_CODES is K.KIND_CODES
    assert sorted(E.KIND_CODES.values()) == list(range(len(KINDS)))
    for name, info in KINDS.items():
        own = info.fallback_gfp == K.FALLBACK_OWN_GFP
        assert S.fallback_gfp(name, 0x1234) == (0x1234 if own else info.fallback_gfp)
        assert info.handler in (K.TIMED, K.HUGETLB)
    assert K.kind_keys() == {"objects_per_slab": ["slab_reclaimable"],
                             "interval": ["hugetlb_1g"]}
    assert E.K_THP == KINDS["thp"].code and E.K_KVMALLOC == KINDS["kvmalloc"].code
    assert E.K_PAGECACHE == KINDS["pagecache"].code


def test_kind_table():
    assert set(KINDS) == {"anon", "thp", "pagecache", "slab_reclaimable", "unmovable",
                          "kernel_stack", "pagetable", "atomic", "kvmalloc", "hugetlb_1g"}
    assert KINDS["anon"].default_gfp == G.GFP_HIGHUSER_MOVABLE and KINDS["anon"].lru == "anon"
    assert KINDS["thp"].default_gfp == G.GFP_TRANSHUGE_LIGHT
    assert KINDS["thp"].default_orders == {9: 1.0}
    assert KINDS["thp"].fallback_gfp == G.GFP_HIGHUSER_MOVABLE
    assert KINDS["pagecache"].lru == "file"
    assert KINDS["slab_reclaimable"].default_gfp == G.GFP_KERNEL | G.__GFP_RECLAIMABLE
    assert KINDS["slab_reclaimable"].lru == "slab"
    assert KINDS["unmovable"].default_gfp == G.GFP_KERNEL and KINDS["unmovable"].lru is None
    assert KINDS["kernel_stack"].default_gfp == G.GFP_KERNEL_ACCOUNT
    assert KINDS["kernel_stack"].default_orders == {2: 1.0}
    assert KINDS["pagetable"].default_gfp == G.GFP_KERNEL_ACCOUNT | G.__GFP_ZERO
    assert KINDS["pagetable"].default_orders == {0: 1.0}
    assert KINDS["atomic"].default_gfp == G.GFP_ATOMIC | G.__GFP_NOWARN
    assert KINDS["kvmalloc"].default_gfp == G.GFP_KERNEL | G.__GFP_NORETRY | G.__GFP_NOWARN
    assert KINDS["kvmalloc"].fallback_gfp == G.GFP_KERNEL
    assert KINDS["hugetlb_1g"].default_orders == {HUGETLB_1G_ORDER: 1.0}
    for k in ("anon", "thp", "pagecache"):
        assert G.gfp_migratetype(KINDS[k].default_gfp) == 1
    assert G.gfp_migratetype(KINDS["slab_reclaimable"].default_gfp) == 2
    for k in ("unmovable", "kernel_stack", "pagetable", "atomic", "kvmalloc"):
        assert G.gfp_migratetype(KINDS[k].default_gfp) == 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_defaults(kind):
    extra = 'interval = "60s"' if kind == "hugetlb_1g" else "rate = 100"
    sc = scenario_from_text(f"""
[scenario]
duration = "120s"
[[source]]
name = "s"
kind = "{kind}"
{extra}
""", "k.toml")
    s = sc.source("s")
    info = KINDS[kind]
    assert s.gfp == info.default_gfp
    assert dict(zip(s.orders.tolist(), s.order_probs.tolist())) == pytest.approx(
        {o: w / sum(info.default_orders.values()) for o, w in info.default_orders.items()})
    assert s.orders.dtype == np.int64 and s.order_probs.dtype == np.float64
    assert s.lifetime.dist == "inf" and s.start_s == 0 and s.stop_s == 120
    assert s.limit_fraction is None and s.limit_bytes is None
    assert s.burst_factor == 1.0 and s.burst_period_s is None and s.pinned == 0
    assert s.objects_per_slab == (16 if kind == "slab_reclaimable" else 1)
    if kind == "hugetlb_1g":
        assert s.interval_s == 60 and s.rate_per_s == pytest.approx(1 / 60)
    else:
        assert s.interval_s is None and s.rate_per_s == 100
    with pytest.raises(ValueError):
        s.orders[0] = 3                       # frozen arrays


def test_scenario_defaults():
    sc = scenario_from_text(BASE.replace('name = "t"\n', ""), "/x/my-run.toml")
    assert sc.name == "my-run"
    assert (sc.policy, sc.kernel_version, sc.defrag_mode, sc.swap) == ("stock", "recent",
                                                                       False, True)
    assert (sc.seed, sc.sample_interval_s, sc.tick_s, sc.early_unmovable) == (1, 1.0, 0.01, None)
    assert sc.phases == ()


def test_full_example_parses():
    sc = scenario_from_text("""
[scenario]
name = "kbuild"
description = "x"
memory = "64G"
cpus = 8
policy = "spb:v1-pre43,pass_2d=false"
kernel_version = "6.12"
defrag_mode = true
swap = false
duration = "10m"
seed = 7
sample_interval = "500ms"
tick = "1ms"
early_unmovable = "64M"

[[source]]
name = "pagecache"
kind = "pagecache"
rate = "200MB/s"
orders = {0 = 0.7, 2 = 0.2, 4 = 0.1}
lifetime = {dist = "uniform", min = "1s", max = "10s"}
gfp = "GFP_HIGHUSER_MOVABLE|__GFP_WRITE"
start = "1s"
stop = "590s"
limit = "40%"
burst = {period = "10s", length = "1s", factor = 10}
pinned = 0.1

[[source]]
name = "slab"
kind = "slab_reclaimable"
rate = 10
objects_per_slab = 32
limit = "8G"
lifetime = {dist = "fixed", value = "2s"}

[[phase]]
name = "pressure"
start = "20s"
stop = "95s"
scale = {pagecache = 2.0, slab = 1.5}
""", "kbuild.toml")
    assert sc.duration_s == 600 and sc.sample_interval_s == 0.5 and sc.tick_s == 0.001
    assert sc.early_unmovable == 64 << 20 and sc.defrag_mode and not sc.swap
    assert sc.policy == "spb:v1-pre43,pass_2d=false" and sc.seed == 7
    pc = sc.source("pagecache")
    mean_block = 4096 * (0.7 + 0.2 * 4 + 0.1 * 16)
    assert pc.rate_per_s == pytest.approx(200 * 2 ** 20 / mean_block)
    assert pc.gfp == G.GFP_HIGHUSER_MOVABLE | G.__GFP_WRITE
    assert pc.limit_fraction == 0.4 and pc.limit_bytes is None
    assert (pc.burst_period_s, pc.burst_length_s, pc.burst_factor) == (10, 1, 10)
    assert pc.pinned == 0.1 and (pc.start_s, pc.stop_s) == (1, 590)
    slab = sc.source("slab")
    assert slab.objects_per_slab == 32 and slab.limit_bytes == 8 << 30
    assert slab.lifetime == Lifetime("fixed", 2.0, 0.0)
    assert sc.phases[0].scale == {"pagecache": 2.0, "slab": 1.5}


# ---------------------------------------------------------------- parsers

@pytest.mark.parametrize("text,sec", [("500ms", 0.5), ("30s", 30), ("10m", 600), ("2h", 7200),
                                      ("1.5s", 1.5), ("100us", 1e-4), (3, 3.0), ("1min", 60)])
def test_parse_time(text, sec):
    assert parse_time(text, "x") == pytest.approx(sec)


@pytest.mark.parametrize("text", ["abc", "30", "-1s", "1 parsec", "", None, "inf"])
def test_parse_time_errors(text):
    with pytest.raises(ScenarioError, match="expected a time like '30s'"):
        parse_time(text, "f.toml: k")


def test_parse_rate():
    assert parse_rate(5000, 4096) == 5000
    assert parse_rate("5000/s", 4096) == 5000
    assert parse_rate("4MB/s", 4096) == 1024
    assert parse_rate("1G/s", 2 << 20) == 512
    for bad in ("fast", "10MB", "0", 0, -3, "x/s"):
        with pytest.raises(ScenarioError):
            parse_rate(bad, 4096, "w")


def test_parse_rate_relative_to_memory():
    assert parse_rate("0.1%/s", 4096, "w", 1 << 30) == 0.001 * (1 << 30) / 4096
    assert parse_rate("8000/s per 256G", 4096, "w", 8 << 30) == 250
    assert parse_rate("8000 per 256G", 4096, "w", 512 << 30) == 16000
    assert parse_rate("4MB/s per 1G", 4096, "w", 1 << 30) == 1024
    assert parse_interval("3s per 256G", 8 << 30) == 96
    assert parse_interval("3s", 8 << 30) == 3
    for bad in ("0.1%/s", "1/s per 1G"):             # no memory size to scale by
        with pytest.raises(ScenarioError, match="needs the scenario's memory size"):
            parse_rate(bad, 4096, "w")
    for bad in ("fast per 1G", "5/s per lots", "1%/s per 1G", "5/s per 0", "0/s per 1G"):
        with pytest.raises(ScenarioError):
            parse_rate(bad, 4096, "w", 1 << 30)
    with pytest.raises(ScenarioError, match="at memory 4T"):
        parse_rate("1e9/s per 1G", 4096, "w", 4 << 40)


#: the absolute rates (and hugetlb_1g intervals) the built-ins had before their
#: rates were written relative to memory: at the native size they must come out
#: bit for bit the same, so the request streams and checksums do not change
NATIVE_RATES = {
    "devvm-256g": {"vm-thp": 100, "anon": 8000, "tools-anon": 4000, "pagecache": "250MB/s",
                   "tmpfiles": "25MB/s", "slab": 1500, "kmalloc": 9000,
                   "kernel-longlived": 400, "pagetables": 3000, "kernel-stacks": 300,
                   "net-rx": 4000, "kvmalloc": 50, "hugetlb-1g": ("interval", "3s")},
    "webserver": {"rx-pages": 15000, "rx-highorder": 3000, "sockets": 4000,
                  "content": "100MB/s", "logs": "10MB/s", "worker-anon": 8000, "heap-thp": 5,
                  "dentries": 200, "pagetables": 300},
    "fragment-then-1g": {"cache": "150MB/s", "anon": 8000, "thp": 20, "kmalloc-short": 3000,
                         "kmalloc-long": 300, "slab": 400, "pagetables": 500,
                         "hugetlb-1g": ("interval", "5s")},
    "spb-stuck": {"anon-short": 150000, "anon-long": 150000, "pins": 4500,
                  "kmalloc-short": 2000, "kmalloc-long": 400, "slab": 500,
                  "vm-1g": ("interval", "2s"), "kmalloc-late": 1500},
}


@pytest.mark.parametrize("name", sorted(NATIVE_RATES))
def test_builtin_rates_at_native_size_unchanged(name):
    # devvm-256g's memory map gives 255.75 GiB; its rates are written per 256G,
    # so compare at that size (the plain layout; --memory drops the map)
    sc = load_scenario(name, {"memory": "256G"} if name == "devvm-256g" else None)
    assert {s.name for s in sc.sources} == set(NATIVE_RATES[name])
    for s in sc.sources:
        old = NATIVE_RATES[name][s.name]
        if isinstance(old, tuple):
            assert s.interval_s == parse_time(old[1]), s.name
            assert s.rate_per_s == 1.0 / parse_time(old[1]), s.name
        else:
            want = parse_rate(old, mean_block_bytes(s.orders, s.order_probs))
            assert s.rate_per_s == want, (s.name, s.rate_per_s.hex(), want.hex())


def test_builtins_scale_with_memory():
    native = load_scenario("devvm-256g", {"memory": "256G"})
    small = load_scenario("devvm-256g", {"memory": "8G"})
    for a, b in zip(native.sources, small.sources):
        if a.kind == "hugetlb_1g":
            assert b.interval_s == a.interval_s * 32
        else:
            assert b.rate_per_s == pytest.approx(a.rate_per_s / 32, rel=1e-12)
        assert b.limit_fraction == a.limit_fraction
    # kbuild and oracle-mixed keep absolute rates: a build needs what it needs
    for name in ("kbuild", "oracle-mixed"):
        a, b = load_scenario(name), load_scenario(name, {"memory": "4G"})
        assert [s.rate_per_s for s in a.sources] == [s.rate_per_s for s in b.sources]


# ---------------------------------------------------------------- errors

def test_error_is_config_error():
    assert issubclass(ScenarioError, ConfigError) and issubclass(ScenarioError, SpbsimError)


def test_bad_time_string(tmp_path):
    e = err(tmp_path, BASE.replace('mean = "10s"', 'mean = "abc"'))
    assert str(e).startswith(f"{tmp_path / 'kbuild.toml'}: source[1].lifetime.mean: "
                             "expected a time like '30s', got 'abc'")
    assert e.key == "source[1].lifetime.mean"


def test_unknown_keys(tmp_path):
    e = err(tmp_path, BASE.replace("rate = 1000", "rate = 1000\nrat = 3"))
    assert "kbuild.toml: source[0].rat: unknown key 'rat'" in str(e)
    assert "known keys:" in str(e) and "rate" in str(e)
    e = err(tmp_path, BASE.replace("cpus = 4", "cpus = 4\ncpu = 3"))
    assert "scenario.cpu: unknown key" in str(e) and "did you mean 'cpus'" in str(e)
    e = err(tmp_path, BASE + "\n[machine]\nx = 1\n")
    assert "kbuild.toml: machine: unknown key 'machine'" in str(e)
    e = err(tmp_path, BASE.replace('mean = "10s"', 'mean = "10s", median = "1s"'))
    assert "source[1].lifetime.median: unknown key" in str(e)


@pytest.mark.parametrize("line,key,what", [
    ("cpus = 0", "scenario.cpus", "0 out of range 1..256"),
    ("cpus = 257", "scenario.cpus", "257 out of range 1..256"),
    ('cpus = "8"', "scenario.cpus", "expected an integer"),
    ('cpus = 4\ntick = "5s"', "scenario.tick", "out of range 1ms..1s"),
    ('cpus = 4\npolicy = "buddy"', "scenario.policy", "policy 'buddy': unknown; available: stock, "),
    ('cpus = 4\npolicy = "spb:v2-pre43"', "scenario.policy", "unknown preset 'v2-pre43'"),
    ('cpus = 4\nkernel_version = "5.4"', "scenario.kernel_version", "allowed recent, 6.12"),
    ('cpus = 4\nswap = "yes"', "scenario.swap", "expected true or false"),
])
def test_scenario_ranges(tmp_path, line, key, what):
    e = err(tmp_path, BASE.replace("cpus = 4", line))
    assert f"kbuild.toml: {key}: " in str(e) and what in str(e)


@pytest.mark.parametrize("mem,what", [("512M", "out of range 1G..4T"), ("5T", "out of range 1G..4T"),
                                      ("3Q", "expected a size like '8G'"),
                                      ("1025M", "multiple of 2M")])
def test_memory_range(tmp_path, mem, what):
    e = err(tmp_path, BASE.replace('memory = "4G"', f'memory = "{mem}"'))
    assert "kbuild.toml: scenario.memory: " in str(e) and what in str(e)


@pytest.mark.parametrize("orders,key,what", [
    ("11", "source[0].orders", "order 11 out of range 0..10"),
    ("-1", "source[0].orders", "out of range 0..10"),
    ("{0 = 0.5, 12 = 0.5}", "source[0].orders.12", "order 12 out of range 0..10"),
    ("{0 = -0.5, 1 = 1}", "source[0].orders.0", "out of range >= 0"),
    ("{0 = 0, 1 = 0}", "source[0].orders", "weights sum to 0"),
    ('{x = 1}', "source[0].orders.x", "not an integer"),
    ('"big"', "source[0].orders", "expected an order"),
])
def test_orders_errors(tmp_path, orders, key, what):
    e = err(tmp_path, BASE.replace("rate = 1000", f"rate = 1000\norders = {orders}"))
    assert f"kbuild.toml: {key}: " in str(e) and what in str(e)


def test_orders_normalised():
    sc = scenario_from_text(BASE.replace("rate = 1000", "rate = 1000\norders = {4 = 2, 0 = 6, 2 = 0}"))
    s = sc.source("pc")
    assert s.orders.tolist() == [0, 4] and s.order_probs.tolist() == [0.75, 0.25]


@pytest.mark.parametrize("repl,key,what", [
    ('pinned = 1.5', "source[0].pinned", "out of range 0..1"),
    ('limit = "120%"', "source[0].limit", "out of range"),
    ('limit = "lots"', "source[0].limit", "expected a share like '40%'"),
    ('limit = "8G"', "source[0].limit", "at most memory"),
    ('burst = {period = "1s", length = "2s", factor = 3}', "source[0].burst.length",
     "at most the period"),
    ('burst = {period = "1s", factor = 3}', "source[0].burst", "missing key 'length'"),
    ('start = "50s"\nstop = "40s"', "source[0].stop", "not after start"),
    ('objects_per_slab = 4', "source[0].objects_per_slab", "only for kind slab_reclaimable"),
    ('interval = "1s"', "source[0].interval", "only for kind hugetlb_1g"),
    ('gfp = "GFP_BOGUS"', "source[0].gfp", "unknown gfp flag 'GFP_BOGUS'"),
    ('gfp = "__GFP_MOVABLE|__GFP_RECLAIMABLE"', "source[0].gfp", "sets both"),
    ('lifetime = {dist = "gamma", mean = "1s"}', "source[0].lifetime.dist",
     "unknown distribution 'gamma'"),
    ('lifetime = {dist = "lognormal", median = "1s"}', "source[0].lifetime", "missing key 'sigma'"),
    ('lifetime = "30s"', "source[0].lifetime", "expected \"inf\" or a table"),
    ('lifetime = {dist = "uniform", min = "5s", max = "1s"}', "source[0].lifetime.max",
     "below min"),
])
def test_source_errors(tmp_path, repl, key, what):
    e = err(tmp_path, BASE.replace("rate = 1000", f"rate = 1000\n{repl}"))
    assert f"kbuild.toml: {key}: " in str(e), str(e)
    assert what in str(e), str(e)


def test_rate_errors(tmp_path):
    e = err(tmp_path, BASE.replace("rate = 1000", 'rate = "fast"'))
    assert "kbuild.toml: source[0].rate: expected a rate like" in str(e)
    e = err(tmp_path, BASE.replace("rate = 1000", "rate = 0"))
    assert "source[0].rate: 0 out of range" in str(e)
    e = err(tmp_path, BASE.replace("rate = 1000\n", ""))
    assert "source[0]: missing key 'rate'" in str(e)


def test_pinned_only_movable(tmp_path):
    text = BASE + '\n[[source]]\nname = "k"\nkind = "unmovable"\nrate = 1\npinned = 0.5\n'
    e = err(tmp_path, text)
    assert "source[2].pinned: only movable sources" in str(e)


def test_unknown_kind(tmp_path):
    e = err(tmp_path, BASE.replace('kind = "pagecache"', 'kind = "pagecahce"'))
    assert "kbuild.toml: source[0].kind: unknown kind 'pagecahce'" in str(e)
    assert "pagecache" in str(e)


def test_duplicate_source_names(tmp_path):
    e = err(tmp_path, BASE.replace('name = "an"', 'name = "pc"'))
    assert "kbuild.toml: source[1].name: duplicate source name 'pc' (also source[0])" in str(e)


def test_bad_source_name(tmp_path):
    e = err(tmp_path, BASE.replace('name = "an"', 'name = "a.b"'))
    assert "source[1].name:" in str(e)


def test_missing_sources(tmp_path):
    e = err(tmp_path, '[scenario]\nname = "x"\n')
    assert "kbuild.toml: source: no [[source]] tables" in str(e)
    e = err(tmp_path, '[source]\nname = "x"\nkind = "anon"\nrate = 1\n')
    assert "write [[source]], not [source]" in str(e)


def test_phase_unknown_source(tmp_path):
    e = err(tmp_path, BASE + '\n[[phase]]\nname = "p"\nstart = "1s"\nstop = "2s"\n'
                             'scale = {pc = 2, nosuch = 3}\n')
    assert "kbuild.toml: phase[0].scale.nosuch: no source named 'nosuch' (sources: pc, an)" \
        in str(e)


def test_phase_errors(tmp_path):
    e = err(tmp_path, BASE + '\n[[phase]]\nname = "p"\nstart = "10s"\nstop = "5s"\n')
    assert "phase[0].stop: " in str(e) and "not after start" in str(e)
    e = err(tmp_path, BASE + '\n[[phase]]\nname = "p"\nscale = {pc = -1}\n')
    assert "phase[0].scale.pc: -1 out of range" in str(e)
    # a phase or source past the end of the run is clipped to it (so --duration
    # can shorten any scenario)
    sc = load_scenario(write(tmp_path, BASE + '\n[[phase]]\nname = "p"\nstop = "1000s"\n'))
    assert sc.phases[0].stop_s == sc.duration_s


def test_toml_syntax_error_names_line(tmp_path):
    text = BASE.replace("cpus = 4", "cpus = = 4")
    line = text.splitlines().index("cpus = = 4") + 1
    e = err(tmp_path, text)
    assert str(e).startswith(f"{tmp_path / 'kbuild.toml'}:{line}: TOML syntax error")


def test_missing_file_and_unknown_builtin(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(str(tmp_path / "nope.toml"))
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'.*built-ins: .*kbuild"):
        load_scenario("nope")


def test_hugetlb_requires_interval():
    with pytest.raises(ScenarioError, match=r"source\[0\]: missing key 'interval'"):
        scenario_from_text('[[source]]\nname = "h"\nkind = "hugetlb_1g"\n', "h.toml")
    with pytest.raises(ScenarioError, match=r"source\[0\]\.orders: not used by kind hugetlb_1g"):
        scenario_from_text('[[source]]\nname = "h"\nkind = "hugetlb_1g"\ninterval = "1s"\n'
                           'orders = 9\n', "h.toml")


# ---------------------------------------------------------------- overrides

def test_overrides(tmp_path):
    p = write(tmp_path, BASE)
    sc = load_scenario(str(p), {"scenario.memory": "64G", "source.pc.rate": "2e5",
                                "source.an.lifetime.mean": "3s", "cpus": "16",
                                "scenario.swap": "false", "scenario.kernel_version": "6.12",
                                "source.pc.lifetime": '{dist = "exp", mean = "1s"}',
                                "source.an.orders": "2"})
    assert sc.memory == "64G" and sc.cpus == 16 and sc.swap is False
    assert sc.kernel_version == "6.12"
    assert sc.source("pc").rate_per_s == 2e5
    assert sc.source("pc").lifetime == Lifetime("exp", 1.0, 0.0)
    assert sc.source("an").lifetime.mean_s == 3.0
    assert sc.source("an").orders.tolist() == [2]
    # the file is untouched
    assert load_scenario(str(p)).memory == "4G"


def test_override_builtin_and_phase():
    sc = load_scenario("oracle-mixed", {"phase.pressure.stop": "100s",
                                        "source.anonhog.rate": "20MB/s"})
    assert sc.phases[2].stop_s == 100
    assert sc.source("anonhog").rate_per_s == pytest.approx(20 * 2 ** 20 / 4096)


def test_override_errors(tmp_path):
    p = write(tmp_path, BASE)
    with pytest.raises(ScenarioError, match=r"--set source\.nosuch\.rate: no source named "
                                            r"'nosuch' \(sources: pc, an\)"):
        load_scenario(str(p), {"source.nosuch.rate": "1"})
    with pytest.raises(ScenarioError, match=r"unknown key 'rat'"):
        load_scenario(str(p), {"source.pc.rat": "1"})
    with pytest.raises(ScenarioError, match=r"unknown key 'bogus'"):
        load_scenario(str(p), {"scenario.bogus": "1"})
    with pytest.raises(ScenarioError, match=r"unknown section 'machine'"):
        load_scenario(str(p), {"machine.x": "1"})
    e = err(tmp_path, BASE, {"scenario.cpus": "0"})
    assert "scenario.cpus: 0 out of range 1..256 (from --set scenario.cpus=0)" in str(e)
    e = err(tmp_path, BASE, {"source.an.lifetime.mean": "abc"})
    assert "source[1].lifetime.mean: expected a time like '30s', got 'abc'" in str(e)
    assert "--set source.an.lifetime.mean=abc" in str(e)


# ---------------------------------------------------------------- lifetimes

def test_lifetime_exp_mean():
    lt = Lifetime("exp", 30.0, 0.0)
    x = lt.sample(np.random.default_rng(1), 100_000)
    assert x.dtype == np.float64 and len(x) == 100_000
    assert abs(x.mean() / 30.0 - 1) < 0.02
    assert lt.mean_s == 30.0


def test_lifetime_lognormal_median():
    lt = Lifetime("lognormal", 5.0, 1.0)
    x = lt.sample(np.random.default_rng(2), 100_000)
    assert abs(np.median(x) / 5.0 - 1) < 0.03
    assert abs(x.mean() / lt.mean_s - 1) < 0.03
    assert lt.mean_s == pytest.approx(5.0 * math.exp(0.5))


def test_lifetime_other_dists():
    rng = np.random.default_rng(3)
    assert np.all(np.isinf(Lifetime("inf").sample(rng, 10))) and Lifetime("inf").mean_s == math.inf
    assert np.all(Lifetime("fixed", 2.0).sample(rng, 10) == 2.0)
    u = Lifetime("uniform", 1.0, 3.0).sample(rng, 50_000)
    assert u.min() >= 1 and u.max() <= 3 and abs(u.mean() - 2) < 0.02
    assert Lifetime("uniform", 1.0, 3.0).mean_s == 2.0


def test_lifetime_sampling_deterministic():
    lt = Lifetime("lognormal", 1.0, 2.0)
    a = lt.sample(np.random.default_rng(9), 1000)
    b = lt.sample(np.random.default_rng(9), 1000)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- rate_scale

def test_rate_scale_phases_and_bursts():
    sc = scenario_from_text(BASE.replace(
        "rate = 1000", 'rate = 1000\nstart = "5s"\nburst = {period = "10s", length = "2s", '
                       'factor = 4}') + """
[[phase]]
name = "a"
start = "20s"
stop = "60s"
scale = {pc = 2.0, an = 0.5}

[[phase]]
name = "b"
start = "40s"
stop = "80s"
scale = {pc = 3.0}
""", "r.toml")
    rs = sc.rate_scale
    # bursts count from the source's start (5 s): [5,7), [15,17), ...
    assert rs("pc", 5.5) == 4.0 and rs("pc", 7.5) == 1.0 and rs("pc", 16.9) == 4.0
    assert rs("pc", 17.0) == 1.0
    assert rs("pc", 22.0) == 2.0                       # phase a only
    assert rs("pc", 25.5) == 8.0                       # phase a x burst
    assert rs("pc", 42.0) == 6.0                       # a and b overlap
    assert rs("pc", 45.5) == 24.0                      # a x b x burst
    assert rs("pc", 60.0) == 3.0                       # a ended (stop is exclusive)
    assert rs("pc", 85.5) == 4.0 and rs("pc", 90.0) == 1.0
    assert rs("an", 30.0) == 0.5 and rs("an", 70.0) == 1.0   # no bursts on 'an'
    with pytest.raises(KeyError):
        rs("nosuch", 1.0)
    # expected requests integrate the same function
    pc = sc.source("pc")
    grid = np.arange(pc.start_s, pc.stop_s, 0.001) + 0.0005
    numeric = sum(rs("pc", t) for t in grid) * 0.001 * pc.rate_per_s
    assert sc.expected_requests()["pc"] == pytest.approx(numeric, rel=1e-3)


def test_source_is_frozen():
    sc = scenario_from_text(BASE)
    with pytest.raises(Exception):
        sc.cpus = 3
    with pytest.raises(Exception):
        sc.source("pc").rate_per_s = 3
    assert isinstance(sc.source("pc"), Source)
