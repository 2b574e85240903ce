"""Errors a user can cause.  The CLI prints their message and exits 2."""

__all__ = ["SpbsimError", "ConfigError", "FreeError"]


class SpbsimError(Exception):
    """Base class: bad input, not a bug in spbsim."""


class ConfigError(SpbsimError, ValueError):
    """An invalid machine, policy or scenario value; the message names the field."""


class FreeError(SpbsimError):
    """An invalid free through the API: double free, wrong order, unknown pfn."""
