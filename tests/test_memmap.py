"""Real memory maps (e820) as a scenario key: the parser's layout worked out
by hand from the lines, its errors, the scenario keys and the engine and CLI
wiring."""
import inspect
import json
import subprocess
import sys

import pytest

from spbsim.errors import ConfigError
from spbsim.memmap import (GEOMETRY_DEFAULTS, builtin_memory_maps, load_memory_map,
                           parse_e820, parse_limit)
from spbsim.scenario import ScenarioError, load_scenario, scenario_from_text

MiB, GiB = 1 << 20, 1 << 30

#: a QEMU-style 4G VM (2G below the PCI hole, 2G above) with a 4 MiB firmware
#: range in high memory (two whole pageblocks: a hole) and a 12 KiB one (reserved pages)
QEMU = """\
# a test map
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007ffdffff] usable
[    0.000000] BIOS-e820: [mem 0x000000007ffe0000-0x000000007fffffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000feffc000-0x00000000feffffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable
[    0.000000] BIOS-e820: [mem 0x0000000140000000-0x00000001403fffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000140400000-0x0000000150000fff] usable
[    0.000000] BIOS-e820: [mem 0x0000000150001000-0x0000000150003fff] ACPI data
[    0.000000] BIOS-e820: [mem 0x0000000150004000-0x000000017fffffff] usable
"""

SCENARIO = """\
[scenario]
name = "mapped"
memory_map = "{map}"
policy = "spb:v1"
duration = "1s"
sample_interval = "1s"

[[source]]
name = "an"
kind = "anon"
rate = 1000
lifetime = {{dist = "exp", mean = "1s"}}
"""


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spbsim.cli", *args], capture_output=True,
                          text=True, timeout=1800, cwd=cwd)


# ---------------------------------------------------------------- the built-in map

def test_builtin_epyc_node0_by_hand():
    assert "epyc-snp-node0" in builtin_memory_maps()
    m = load_memory_map("epyc-snp-node0")
    assert m.limit == 0x4080000000            # the file's "# limit:" line: node 0 only
    # below 4 GiB: the last usable range ends at 0x6fffffff -> 0x70000000 (2M aligned)
    assert m.low_memory == 0x70000000
    # above: usable to 0x407fcfffff, so the span ends at 0x407fd00000 rounded up to 2M
    assert m.memory == 0x70000000 + (0x407fe00000 - 0x100000000) == 0x3fefe00000
    # the only pageblocks with no usable page: inside 0x67acf000-0x6effefff, from the
    # first whole pageblock 0x67c00000 to 0x6ee00000 (0x6ee00000's block holds usable
    # page 0x6efff000): 57 pageblocks, 114 MiB
    assert m.holes == ((0x67c00000, 0x6ee00000 - 0x67c00000),)
    assert m.holes[0][1] == 57 * 2 * MiB
    assert m.reserved == (
        (0x8f000, 0x1000),                     # ACPI NVS in the first pageblock
        (0xa0000, 0x60000),                    # the legacy gap 640K..1M
        (0x5a14b000, 0x200000),                # 'reserved': pageblocks 0x5a000000 and 0x5a200000
        (0x67acf000, 0x67c00000 - 0x67acf000),  # head of the firmware gap, in block 0x67a00000
        (0x6ee00000, 0x6efff000 - 0x6ee00000),  # tail of the ACPI data, in block 0x6ee00000
        (0x6f000000, 0xb000),                  # ACPI NVS at the start of block 0x6f000000
        (0x407fd00000, 0x100000),              # the top range's reserved tail (1 MiB)
    )
    assert m.reserved_bytes == 0x1000 + 0x60000 + 0x200000 + 0x131000 + 0x1ff000 + 0xb000 + 0x100000
    d = m.describe()
    assert d["name"] == "epyc-snp-node0" and d["memory"] == "261886M" and d["holes"] == 1


def test_machine_kwargs_do_not_reserve_twice():
    m = load_memory_map("epyc-snp-node0")
    kw = m.machine_kwargs()
    assert kw["memory"] == m.memory and kw["low_memory"] == 0x70000000 and kw["holes"] == m.holes
    # the first MiB is firmware_reserved already, the top of RAM holds the memmap
    # (4 GiB at 64 bytes per page): both drop out of the map's reserved ranges
    assert kw["reserved"] == ((0x5a14b000, 0x200000), (0x67acf000, 0x131000),
                              (0x6ee00000, 0x1ff000), (0x6f000000, 0xb000))


def test_geometry_defaults_are_machines():
    from spbsim.machine import Machine
    params = inspect.signature(Machine.__init__).parameters
    for k, v in GEOMETRY_DEFAULTS.items():
        assert params[k].default == v


def test_builtin_map_machine_spb_state():
    """The built-in map on an SPB machine: the hole taints its 1 GB unit; the
    top SPB ends with the zone, its last pages reserved."""
    import numpy as np
    from spbsim import Machine
    from spbsim.mm.const import PG_reserved, ZONE_DMA32, ZONE_NORMAL
    from spbsim.mm.spb.params import SB_TAINTED, SPB_LIST_EMPTY, NR_SB_FULLNESS
    from spbsim.mm.state import ZS_MANAGED
    text = SCENARIO.format(map="epyc-snp-node0")
    sc = scenario_from_text(text, "mapped.toml")
    assert sc.memory == "261886M" and sc.memory_bytes == 0x3fefe00000
    M = Machine(spb="v1", **sc.memory_map.machine_kwargs())
    g = M.geometry
    assert g.memory == 0x3fefe00000 and g.low_memory == 0x70000000
    assert g.holes == ((0x70000, 0x100000), (0x67c00, 0x6ee00))
    s = M.mem.spb

    def slot(zone, addr):
        (i,) = np.nonzero((s.zone == zone) & (s.start_pfn == addr >> 12))[0]
        return int(i)
    i = slot(ZONE_DMA32, 0x40000000)           # [1G, 2G): DMA32 ends at low memory 0x70000000
    assert int(s.total_pageblocks[i]) == (0x70000000 - 0x40000000) >> 21 == 384
    assert int(s.nr_reserved[i]) == 57
    assert SB_TAINTED * NR_SB_FULLNESS <= int(s.list_id[i]) < SPB_LIST_EMPTY   # a tainted list
    top = slot(ZONE_NORMAL, 0x4040000000)      # the SPB holding 0x407fd00000
    assert int(s.total_pageblocks[top]) == (0x407fe00000 - 0x4040000000) >> 21 == 511
    tail = M.mem.pg_flags[0x407fd00:0x407fe00]
    assert ((tail & PG_reserved) != 0).all()
    # managed = present - reserved: the hole and the below-4G gap are absent; the first
    # MiB, the 48 MiB kernel image, the memmap and the map's reserved pages are reserved
    memmap = (g.memory // 4096 * 64 + 4095) >> 12
    present = (g.memory >> 12) - (57 << 9)
    reserved = 256 + (48 << 8) + memmap + ((0x200000 + 0x131000 + 0x1ff000 + 0xb000) >> 12)
    assert int(M.mem.zstat[:, ZS_MANAGED].sum()) == present - reserved


# ---------------------------------------------------------------- parsing

def test_small_map_holes_and_partial_pages():
    m = parse_e820(QEMU, "qemu.e820")
    # usable 0..0x9fbff is trimmed to whole pages: 0x9f000 is reserved
    assert m.usable[0] == (0, 0x9f000)
    assert m.low_memory == 0x80000000           # 0x7ffe0000 rounded up to 2M
    assert m.memory == 4 * GiB
    assert m.holes == ((0x140000000, 4 * MiB),)
    assert m.reserved == ((0x9f000, 0x61000), (0x7ffe0000, 0x20000), (0x150001000, 0x3000))
    assert m.limit is None


@pytest.mark.parametrize("line", [
    "BIOS-e820: [mem 0x0000000000000000-0x00000000bfffffff] usable",
    "e820: [mem 0x0000000000000000-0x00000000bfffffff] usable",
    "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x00000000bfffffff] usable",
    "Mar 01 10:00:00 host kernel: BIOS-e820: [mem 0x0000000000000000-0x00000000bfffffff] usable",
    "BIOS-e820: 0000000000000000 - 00000000c0000000 (usable)",        # before v2.6.26
])
def test_line_forms(line):
    text = line + "\nBIOS-e820: [mem 0x00000000c0000000-0x00000000c00fffff] ACPI data\n"
    m = parse_e820(text, "x.e820")
    assert m.usable == ((0, 0xc0000000),) and m.memory == 3 * GiB and m.holes == ()


@pytest.mark.parametrize("kind", ["reserved", "ACPI data", "ACPI NVS", "unusable",
                                  "persistent (type 7)", "soft reserved", "type 20"])
def test_every_other_type_is_not_ram(kind):
    text = ("BIOS-e820: [mem 0x0000000000000000-0x000000003fffffff] usable\n"
            f"BIOS-e820: [mem 0x0000000040000000-0x00000000403fffff] {kind}\n"
            "BIOS-e820: [mem 0x0000000040400000-0x000000007fffffff] usable\n")
    m = parse_e820(text, "x.e820")
    assert m.holes == ((0x40000000, 4 * MiB),) and m.memory == 2 * GiB


def test_limit_header_override_and_none():
    text = ("# limit: 0x80000000\n"
            "BIOS-e820: [mem 0x0000000000000000-0x000000007fffffff] usable\n"
            "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable\n")
    assert parse_e820(text, "x").memory == 2 * GiB
    assert parse_e820(text, "x", limit="none").memory == 3 * GiB
    assert parse_e820(text, "x", limit="0x120000000").memory == 2 * GiB + 512 * MiB
    assert parse_e820(text, "x", limit="1G").memory == 1 * GiB
    assert parse_limit(0x4080000000) == parse_limit("0x4080000000") == parse_limit("258G")


def _raises(text, label="m.e820", **kw):
    with pytest.raises(ConfigError) as ei:
        parse_e820(text, label, **kw)
    return str(ei.value)


def test_errors_name_the_file_and_line():
    good = "BIOS-e820: [mem 0x0000000000000000-0x000000007fffffff] usable\n"
    assert _raises("# c\n" + good + "BIOS-e820: [mem 0xZZ-0x1] usable\n").startswith("m.e820:3: ")
    assert _raises(good + "e820: update [mem 0x0-0xfff] usable ==> reserved\n") \
        .startswith("m.e820:2: not an e820 line")
    msg = _raises(good + "BIOS-e820: [mem 0x0000000070000000-0x00000000900fffff] reserved\n")
    assert msg.startswith("m.e820:2: ") and "overlaps" in msg and "line 1" in msg
    assert _raises(good + "BIOS-e820: [mem 0x0000000090000000-0x000000008fffffff] usable\n") \
        .startswith("m.e820:2: empty or reversed")
    assert "m.e820:1: limit" in _raises("# limit: soon\n" + good)
    assert "no e820 lines" in _raises("# nothing\n")
    assert "no usable memory" in _raises(
        "BIOS-e820: [mem 0x0000000000000000-0x000000007fffffff] reserved\n")
    assert "at least 256M" in _raises(
        "BIOS-e820: [mem 0x0000000000000000-0x0000000000ffffff] usable\n"
        "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable\n")
    assert "allowed 1G to 4T" in _raises(
        "BIOS-e820: [mem 0x0000000000000000-0x000000001fffffff] usable\n")
    msg = _raises(good, limit="0x20000000")
    assert msg.startswith("m.e820 (below limit 0x20000000): ") and "allowed 1G to 4T" in msg


def test_load_paths(tmp_path):
    (tmp_path / "q.e820").write_text(QEMU)
    assert load_memory_map("q.e820", base_dir=str(tmp_path)).memory == 4 * GiB
    assert load_memory_map(str(tmp_path / "q.e820")).name == str(tmp_path / "q.e820")
    with pytest.raises(ConfigError, match="unknown memory map 'epyc'.*epyc-snp-node0"):
        load_memory_map("epyc")
    with pytest.raises(ConfigError, match="no such memory map file"):
        load_memory_map("missing.e820", base_dir=str(tmp_path))


# ---------------------------------------------------------------- scenario keys

def _scenario_file(tmp_path, map_name="q.e820", extra=""):
    (tmp_path / "q.e820").write_text(QEMU)
    p = tmp_path / "mapped.toml"
    p.write_text(SCENARIO.format(map=map_name).replace("[[source]]", extra + "\n[[source]]", 1))
    return p


def test_scenario_relative_path_resolves_against_the_file(tmp_path, monkeypatch):
    p = _scenario_file(tmp_path)
    monkeypatch.chdir("/")
    sc = load_scenario(str(p))
    assert sc.memory == "4G" and sc.memory_bytes == 4 * GiB and sc.memory_map.name == "q.e820"
    # sweeps parse the text with the file's path as label
    assert scenario_from_text(p.read_text(), str(p)).memory_map.memory == 4 * GiB
    # --set paths are relative to the current directory
    monkeypatch.chdir(tmp_path)
    sc = load_scenario("kbuild", {"scenario.memory_map": "q.e820"})
    assert sc.memory == "4G" and sc.memory_map.holes == ((0x140000000, 4 * MiB),)


def test_scenario_memory_must_agree_with_the_map(tmp_path):
    assert load_scenario(str(_scenario_file(tmp_path, extra='memory = "4G"'))).memory == "4G"
    p = _scenario_file(tmp_path, extra='memory = "8G"')
    with pytest.raises(ScenarioError) as ei:
        load_scenario(str(p))
    msg = str(ei.value)
    assert msg.startswith(f"{p}: scenario.memory: '8G' differs") and "memory_map 'q.e820'" in msg
    p = _scenario_file(tmp_path)
    # --memory (a memory override) drops the file's map: the plain layout at that size
    sc = load_scenario(str(p), {"scenario.memory": "8G"})
    assert sc.memory == "8G" and sc.memory_map is None
    # both given on the command line and disagreeing: an error
    with pytest.raises(ScenarioError, match=r"scenario.memory: '8G' differs"):
        load_scenario("kbuild", {"scenario.memory": "8G", "scenario.memory_map": "epyc-snp-node0"})
    # a map set by --set replaces the file's memory
    assert load_scenario("kbuild", {"scenario.memory_map": "epyc-snp-node0"}).memory == "261886M"


@pytest.mark.parametrize("overrides, key, msg", [
    ({"scenario.memory_map_limit": "1G"}, "scenario.memory_map_limit", "needs memory_map"),
    ({"scenario.memory_map": "epyc-snp-node0", "scenario.memory_map_limit": "soon"},
     "scenario.memory_map_limit", "expected an address"),
    ({"scenario.memory_map": "nosuchmap"}, "scenario.memory_map", "unknown memory map"),
    ({"scenario.memory_map": 7}, "scenario.memory_map", "expected a string"),
    ({"scenario.memory_map": "epyc-snp-node0", "scenario.memory_map_limit": "0x10000000"},
     "scenario.memory_map", "the map gives 256M of memory"),
])
def test_scenario_bad_values(overrides, key, msg):
    with pytest.raises(ScenarioError) as ei:
        load_scenario("kbuild", overrides)
    assert ei.value.key == key and msg in str(ei.value)
    assert str(ei.value).startswith(f"kbuild.toml: {key}: ") and "\n" not in str(ei.value)


def test_limit_key_cuts_the_builtin_map():
    sc = load_scenario("kbuild", {"scenario.memory_map": "epyc-snp-node0",
                                  "scenario.memory_map_limit": "0x200000000"})
    assert sc.memory_map.memory == 0x70000000 + 4 * GiB


# ---------------------------------------------------------------- engine and CLI

def test_engine_builds_the_mapped_machine(tmp_path):
    from spbsim.engine.run import Simulation
    from spbsim.mm.const import ZONE_NORMAL
    sc = load_scenario(str(_scenario_file(tmp_path)))
    sim = Simulation(sc)
    g = sim.machine.geometry
    assert g.memory == 4 * GiB and g.low_memory == 2 * GiB
    assert (0x140000, 0x140400) in g.holes
    assert (0x150001, 0x150004) in [(s, e) for s, e, _ in g.reserved]
    s = sim.machine.mem.spb
    i = int(s.zone_first[ZONE_NORMAL])          # [4G, 5G): clean; [5G, 6G): two hole pageblocks
    assert int(s.start_pfn[i]) == 0x100000 and int(s.nr_reserved[i]) == 0
    assert int(s.start_pfn[i + 1]) == 0x140000 and int(s.nr_reserved[i + 1]) == 2
    summary = sim.run()
    assert summary["requests"] > 0
    with pytest.raises(ConfigError, match="machine overrides cannot"):
        Simulation(sc, machine_overrides={"memory": "8G"})


def test_cli_run_records_the_map(tmp_path):
    p = _scenario_file(tmp_path)
    out = tmp_path / "res"
    r = run_cli("run", str(p), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "4G (memory map q.e820)" in r.stderr
    params = json.loads((out / "params.json").read_text())
    assert params["memory"] == "4G"
    assert params["memory_map"]["name"] == "q.e820" and params["memory_map"]["holes"] == 1


@pytest.mark.parametrize("args, msg", [
    (["--memory", "8G", "--set", "scenario.memory_map=q.e820"],
     "scenario.memory: '8G' differs from the 4G (0x100000000 bytes) that memory_map 'q.e820' gives"),
    (["--set", "scenario.memory_map=nosuch.e820"], "scenario.memory_map: nosuch.e820: no such"),
    (["--set", "memory_map_limit=soon"], "scenario.memory_map_limit: expected an address"),
])
def test_cli_bad_map_values_are_one_line(tmp_path, args, msg):
    p = _scenario_file(tmp_path)
    r = run_cli("run", str(p), *args, cwd=str(tmp_path))
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_malformed_map_names_file_and_line(tmp_path):
    p = _scenario_file(tmp_path)
    (tmp_path / "q.e820").write_text(QEMU.replace("] usable\n", "] usable\nBIOS-e820: junk\n", 1))
    r = run_cli("run", str(p))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "scenario.memory_map: q.e820:3: not an e820 line" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
