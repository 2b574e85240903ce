"""Machine switches are declared once (spbsim.switches): Machine's keyword
defaults, the scenario parser, Scenario and the engine all follow the table."""
import inspect
from pathlib import Path

import pytest

from spbsim.machine import Machine
from spbsim.scenario import SCENARIO_KEYS, ScenarioError, scenario_from_text
from spbsim.switches import MACHINE_SWITCHES, SWITCH_DEFAULTS

SRC = "[[source]]\nname = 'a'\nkind = 'anon'\nrate = '1MB/s'\n"


def test_machine_defaults_follow_the_table():
    params = inspect.signature(Machine.__init__).parameters
    for k, d in SWITCH_DEFAULTS.items():
        assert params[k].default is d, k
        assert f"{k} (default {d})" in Machine.__doc__


@pytest.mark.parametrize("name", list(MACHINE_SWITCHES))
def test_every_switch_is_a_scenario_key_with_its_default(name):
    assert name in SCENARIO_KEYS
    sc = scenario_from_text(SRC, "s.toml")
    assert getattr(sc, name) is SWITCH_DEFAULTS[name]
    flipped = not SWITCH_DEFAULTS[name]
    sc = scenario_from_text(f"[scenario]\n{name} = {str(flipped).lower()}\n" + SRC, "s.toml")
    assert getattr(sc, name) is flipped
    assert sc.machine_switches() == SWITCH_DEFAULTS | {name: flipped}
    with pytest.raises(ScenarioError, match=f"s.toml: scenario.{name}: expected true or false"):
        scenario_from_text(f"[scenario]\n{name} = 'maybe'\n" + SRC, "s.toml")


def test_the_engine_passes_every_switch_to_the_machine(monkeypatch):
    from spbsim.engine import run
    text = "[scenario]\nmemory = '1G'\ncpus = 1\nduration = '10ms'\n" + \
           "".join(f"{k} = {str(not d).lower()}\n" for k, d in SWITCH_DEFAULTS.items()) + SRC
    seen = {}

    class Spy(Machine):
        def __init__(self, **kw):
            seen.update(kw)
            super().__init__(**kw)
    monkeypatch.setattr(run, "Machine", Spy)
    run.Simulation(scenario_from_text(text, "s.toml"))
    assert {k: seen[k] for k in SWITCH_DEFAULTS} == {k: not d for k, d in SWITCH_DEFAULTS.items()}


def test_scenario_docs_list_every_switch_with_its_default():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "scenarios.md").read_text()
    for k, d in SWITCH_DEFAULTS.items():
        assert f"| `{k}` | {str(d).lower()}" in doc, k
