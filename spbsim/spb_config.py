"""Presets and switches of the SPB allocator (Python side): resolve a preset
plus ``--set spb.NAME=value`` overrides into ``spb.cfg``, with clear errors."""
import numpy as np

from .errors import ConfigError
from .mm.spb.params import SPB_PRESETS, SPB_SWITCHES
from .mm.spb.state import new_spb

__all__ = ["resolve_switches", "make_spb", "SPB_PRESET_NAMES", "SPB_DEFAULT_PRESET",
           "describe_switches"]

#: the preset names, declared in spbsim.mm.spb.params.SPB_PRESETS (without its "" alias of v1)
SPB_PRESET_NAMES = tuple(k for k in SPB_PRESETS if k)
SPB_DEFAULT_PRESET = "v1"


def _value(name, kind, value):
    if kind == "bool":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int) and value in (0, 1):
            return value
        if str(value).lower() in ("true", "on", "yes", "1"):
            return 1
        if str(value).lower() in ("false", "off", "no", "0"):
            return 0
        raise ConfigError(f"spb.{name}={value!r}: expected true or false")
    if kind == "int" or (isinstance(kind, tuple) and kind[0] == "int"):
        lo, hi = (1, 512) if kind == "int" else kind[1:]
        if isinstance(value, (bool, np.bool_)) or \
                (isinstance(value, (float, np.floating)) and not float(value).is_integer()):
            raise ConfigError(f"spb.{name}={value!r}: expected an integer")
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"spb.{name}={value!r}: expected an integer") from None
        if not lo <= v <= hi:
            raise ConfigError(f"spb.{name}={value!r}: allowed {lo} to {hi}")
        return v
    key = str(value).lower()
    if key not in kind:
        raise ConfigError(f"spb.{name}={value!r}: allowed {', '.join(kind)}")
    return kind[key]


def resolve_switches(preset, overrides=None):
    """{switch name: value as written} for a preset plus overrides."""
    preset = SPB_DEFAULT_PRESET if preset in (True, "", None) else str(preset)
    if preset not in SPB_PRESETS or preset == "":
        raise ConfigError(f"spb preset {preset!r}: unknown; available: "
                          f"{', '.join(SPB_PRESET_NAMES)}")
    sw = dict(SPB_PRESETS[preset])
    for k, v in (overrides or {}).items():
        name = k[4:] if str(k).startswith("spb.") else str(k)
        if name not in SPB_SWITCHES:
            raise ConfigError(f"spb.{name}: unknown switch; known: {', '.join(sorted(SPB_SWITCHES))}")
        _value(name, SPB_SWITCHES[name][1], v)      # validate
        sw[name] = v
    return preset, sw


def make_spb(geometry, preset, overrides, cpus):
    """(preset, switches, SPB state) with spb.cfg set from the switches."""
    preset, sw = resolve_switches(preset, overrides)
    s = new_spb(geometry, hint_cpus=max(1, int(cpus)))
    for name, v in sw.items():
        idx, kind = SPB_SWITCHES[name]
        s.cfg[idx] = _value(name, kind, v)
    return preset, sw, s


def describe_switches():
    """Markdown table of the switches and their value per preset."""
    rows = ["| switch | " + " | ".join(SPB_PRESET_NAMES) + " |",
            "|---|" + "---|" * len(SPB_PRESET_NAMES)]
    for name in SPB_SWITCHES:
        rows.append(f"| `{name}` | " + " | ".join(str(SPB_PRESETS[p][name]) for p in SPB_PRESET_NAMES) + " |")
    return "\n".join(rows)
