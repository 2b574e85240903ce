"""Placement policies by name: ``stock[:PRESET]`` and ``spb[:PRESET][,SWITCH=VALUE...]``.

A policy is a set of machine switches applied on top of the scenario:
``stock`` (mainline v6.19/7.0; the scenario's kernel_version may say 6.12),
``stock:6.12`` (the 6.12 LTS kernel), ``stock:6.1``, ``stock:defrag`` (vm.defrag_mode = 1), ``stock:noboost``
(vm.watermark_boost_factor = 0), and the superpageblock allocator
``spb:s1|v1|v1-pre43|v2`` (spbsim.mm.spb; ``spb`` = ``spb:v1``) with watermark
boosting off, as the posted series removed it (spec §5.8).  The table of
policies is in README.md, the SPB presets and switches in docs/spb.md.
"""
from .errors import ConfigError

__all__ = ["STOCK_PRESETS", "policy_overrides", "known_policies"]

STOCK_PRESETS = {
    "": {},
    "6.12": {"version": "6.12"},
    "6.1": {"version": "6.1"},
    "defrag": {"defrag_mode": True},
    "noboost": {"watermark_boost_factor": 0},
}


SPB_POLICY_PRESETS = ("s1", "v1", "v1-pre43", "v2")


def known_policies():
    return (["stock" + (":" + k if k else "") for k in STOCK_PRESETS]
            + ["spb"] + ["spb:" + k for k in SPB_POLICY_PRESETS])


def policy_overrides(policy):
    """Machine keyword overrides for a policy name; ConfigError if unknown.

    SPB policies take switches after commas, for ablations in one compare:
    ``spb:v1,pass_2d=false,defrag_budget=4``."""
    head, *switches = str(policy).split(",")
    name, _, preset = head.partition(":")
    if switches:
        if name != "spb":
            raise ConfigError(f"policy {policy!r}: switches after ',' exist only for spb policies")
        kw = policy_overrides(head)
        sset = {}
        for item in switches:
            k, eq, v = item.partition("=")
            if not eq:
                raise ConfigError(f"policy {policy!r}: {item!r} is not SWITCH=VALUE")
            sset[k] = v
        from .spb_config import resolve_switches
        try:
            resolve_switches(kw["spb"], sset)
        except ConfigError as e:
            raise ConfigError(f"policy {policy!r}: {e}") from None
        kw["spb_set"] = sset
        return kw
    if name == "stock" and preset in STOCK_PRESETS:
        return dict(STOCK_PRESETS[preset])
    if name == "spb" and (preset == "" or preset in SPB_POLICY_PRESETS):
        return {"spb": preset or "v1", "watermark_boost_factor": 0}
    raise ConfigError(f"policy {policy!r}: unknown; available: {', '.join(known_policies())}")
