"""Policy.parse: every preset, switch overrides, and the one-line errors."""
import pickle
import subprocess
import sys

import pytest

from spbsim.errors import ConfigError
from spbsim.mm.spb.params import SPB_PRESETS, SPB_SWITCHES
from spbsim.policy import (STOCK_PRESETS, SPB_POLICY_PRESETS, Policy, PolicyError,
                           known_policies, policy_overrides)
from spbsim.scenario import ScenarioError, scenario_from_text
from spbsim.spb_config import SPB_PRESET_NAMES, resolve_switches

KNOWN = ("stock, stock:6.12, stock:6.1, stock:defrag, stock:noboost, stock:pcpbuddy, spb, "
         "spb:s1, spb:v1, spb:v1-pre43, spb:v2")


def test_preset_names_are_declared_once():
    assert ", ".join(known_policies()) == KNOWN
    assert SPB_POLICY_PRESETS == SPB_PRESET_NAMES == ("s1", "v1", "v1-pre43", "v2")
    assert set(SPB_POLICY_PRESETS) == set(SPB_PRESETS) - {""}


@pytest.mark.parametrize("text,kw", [
    ("stock", {}),
    ("stock:6.12", {"version": "6.12"}),
    ("stock:6.1", {"version": "6.1"}),
    ("stock:defrag", {"defrag_mode": True}),
    ("stock:noboost", {"watermark_boost_factor": 0}),
    ("stock:pcpbuddy", {"pcpbuddy": True}),
])
def test_stock_presets(text, kw):
    p = Policy.parse(text)
    assert (p.kind, p.preset, p.overrides, p.switches) == ("stock", text[6:], (), ())
    assert p.machine_kwargs() == kw and p.machine_kwargs() is not p.machine_kwargs()
    assert p.text == p.canonical == str(p) == text


@pytest.mark.parametrize("preset", ["s1", "v1", "v1-pre43", "v2"])
def test_spb_presets(preset):
    p = Policy.parse("spb:" + preset)
    assert (p.kind, p.preset, p.overrides) == ("spb", preset, ())
    assert dict(p.switches) == SPB_PRESETS[preset]
    assert p.machine_kwargs() == {"spb": preset, "watermark_boost_factor": 0}


def test_spb_alone_is_v1_and_equal_to_it():
    p, v1 = Policy.parse("spb"), Policy.parse("spb:v1")
    assert p == v1 and hash(p) == hash(v1) and p.canonical == "spb:v1"
    assert (p.text, str(p)) == ("spb", "spb")           # results keep the spelling used
    assert Policy.parse("spb:v2") != v1 and Policy.parse("stock") != Policy.parse("stock:6.12")


def test_overrides_apply_on_the_preset_last_one_wins():
    p = Policy.parse("spb:v2,pass_2d=false,defrag_budget=4,pass_2d=true")
    assert p.preset == "v2" and p.overrides == (("pass_2d", "true"), ("defrag_budget", "4"))
    sw = dict(p.switches)
    assert sw["pass_2d"] == "true" and sw["defrag_budget"] == "4"
    assert sw["relax_sequence"] is True                     # v2's own value kept
    assert set(sw) == set(SPB_SWITCHES)
    assert p.canonical == "spb:v2,pass_2d=true,defrag_budget=4"
    assert p.machine_kwargs() == {"spb": "v2", "watermark_boost_factor": 0,
                                  "spb_set": {"pass_2d": "true", "defrag_budget": "4"}}
    assert Policy.parse("spb,hint=off").machine_kwargs()["spb"] == "v1"


def test_policy_is_immutable():
    p = Policy.parse("spb:v1,hint=off")
    with pytest.raises(AttributeError):
        p.preset = "v2"
    p.machine_kwargs()["spb_set"]["hint"] = "on"
    assert Policy.parse("spb:v1,hint=off").machine_kwargs()["spb_set"] == {"hint": "off"}


@pytest.mark.parametrize("text,detail", [
    ("foo", f"unknown; available: {KNOWN}"),
    ("", f"unknown; available: {KNOWN}"),
    ("SPB", f"unknown; available: {KNOWN}"),
    ("spb:v9", f"unknown preset 'v9' after 'spb'; available: {KNOWN}"),
    ("stock:v1", f"unknown preset 'v1' after 'stock'; available: {KNOWN}"),
    ("spb:", f"unknown preset '' after 'spb'; available: {KNOWN}"),
    ("stock,hint=1", "switches after ',' exist only for spb policies"),
    ("spb:v1,hint", "'hint' is not SWITCH=VALUE"),
    ("spb,=1", "'=1' is not SWITCH=VALUE"),
    ("spb,defrag_budget=+4", "defrag_budget=+4: a value is letters, digits, '_', '.' or '-'"),
    ("spb,hint=+1", "spb.hint='+1': expected true or false"),
    ("spb:v1,nonsense=1", "spb.nonsense: unknown switch; known: aggressive, "),
    ("spb,hint=maybe", "spb.hint='maybe': expected true or false"),
    ("spb:v1,defrag_budget=0", "spb.defrag_budget='0': allowed 1 to 512"),
])
def test_bad_policies_name_the_bad_part(text, detail):
    with pytest.raises(PolicyError) as ei:
        Policy.parse(text)
    e = ei.value
    assert isinstance(e, ConfigError) and e.text == text and e.detail.startswith(detail)
    assert str(e) == f"policy {text!r}: {e.detail}" and "\n" not in str(e)
    back = pickle.loads(pickle.dumps(e))               # worker processes send errors back
    assert type(back) is PolicyError and str(back) == str(e) and back.detail == e.detail


def test_old_functions_still_work():
    assert policy_overrides("spb:v1,hint=off") == Policy.parse("spb:v1,hint=off").machine_kwargs()
    assert policy_overrides("stock:defrag") == {"defrag_mode": True}
    with pytest.raises(ConfigError, match="policy 'spb:v9': unknown preset"):
        policy_overrides("spb:v9")
    assert resolve_switches("", {"spb.hint": False}) == ("v1", dict(SPB_PRESETS["v1"], hint=False))
    assert STOCK_PRESETS["6.1"] == {"version": "6.1"}


SCENARIO = """
[scenario]
memory = "1G"
policy = "{policy}"

[[source]]
name = "anon"
kind = "anon"
rate = 100
lifetime = {{dist = "exp", mean = "1s"}}
"""


def test_scenario_policy_is_checked_by_policy_parse():
    sc = scenario_from_text(SCENARIO.format(policy="spb:v2,pass_2d=false"), "s.toml")
    assert sc.policy == "spb:v2,pass_2d=false"
    with pytest.raises(ScenarioError) as ei:
        scenario_from_text(SCENARIO.format(policy="spb:v9"), "s.toml")
    assert str(ei.value) == (f"s.toml: scenario.policy: policy 'spb:v9': unknown preset 'v9' "
                             f"after 'spb'; available: {KNOWN}")


@pytest.mark.parametrize("args,msg", [
    (["run", "webserver", "--policy", "spb:v9"],
     "webserver.toml: scenario.policy: policy 'spb:v9': unknown preset 'v9' after 'spb'; "
     "available: stock,"),
    (["compare", "webserver", "--policy", "stock", "--policy", "stock,hint=1"],
     "policy 'stock,hint=1': switches after ',' exist only for spb policies"),
    (["bench", "--sizes", "1G", "--policy", "nosuch"], f"policy 'nosuch': unknown; available: {KNOWN}"),
])
def test_cli_bad_policy_is_one_line_exit_2(args, msg):
    r = subprocess.run([sys.executable, "-m", "spbsim.cli", *args], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
