"""One place that decides how the machine model is compiled.

``njit`` is numba's ``@njit(cache=True, _nrt=False)``.  The machine state is
a namedtuple of arrays owned by Python; with numba's reference counting on,
every ``m.field`` access inside a loop costs an atomic incref/decref pair,
which measured 10x slower on the allocation path.  Without NRT, compiled
code must not allocate arrays (none of the machine model does).  With ``NUMBA_DISABLE_JIT=1`` numba
runs the very same functions as plain Python (slow, but debuggable and used
by a test that cross-checks both executions).
"""
from numba import njit as _njit

__all__ = ["njit", "njit_inline"]


def njit(fn):
    return _njit(cache=True, _nrt=False)(fn)


def njit_inline(fn):
    """For the allocation hot path: inlined at numba-IR level into every caller.

    A call that is not inlined passes the machine namedtuple flattened into
    ~200 scalar arguments (measured ~25 ns a call); the hot path therefore
    compiles into one function per entry point.
    """
    return _njit(cache=True, _nrt=False, inline="always")(fn)
