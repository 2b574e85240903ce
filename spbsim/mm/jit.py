"""One place that decides how the machine model is compiled.

Details: docs/model.md ("Module notes", `spbsim.mm.jit`).
"""
import hashlib
import os
from pathlib import Path

import numba
from numba import njit as _njit
from numba.core import types

__all__ = ["njit", "njit_inline", "cache_dir"]


def _source_hash():
    here = Path(__file__).resolve().parent
    h = hashlib.sha1((numba.__version__ + "/opt" + str(numba.config.OPT)).encode())
    for p in sorted(here.rglob("*.py")):
        if "__numba_cache__" in p.parts:
            continue
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir():
    """Where compiled code is cached: $NUMBA_CACHE_DIR (or the package, or
    ~/.cache/spbsim when the package is read-only) / spbsim-<source hash>."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        pkg = Path(__file__).resolve().parents[1] / "__numba_cache__"
        try:
            pkg.mkdir(exist_ok=True)
            base = str(pkg) if os.access(pkg, os.W_OK) else None
        except OSError:
            base = None
        if not base:
            base = os.path.join(os.path.expanduser("~"), ".cache", "spbsim")
    return os.path.join(base, "spbsim-" + _source_hash())


numba.config.CACHE_DIR = cache_dir()


def _widen(t):
    """The type a compiled callee is specialised on: every integer (int8,
    uint8 from a pageblock array, int32, a literal constant) as int64."""
    u = types.unliteral(t)
    return types.int64 if isinstance(u, types.Integer) else u


def njit(fn):
    """``@njit(cache=True, _nrt=False)``, specialised once per argument shape.

    numba compiles a callee anew for every distinct tuple of argument types it
    is called with from compiled code, literal constants included: a callee
    called as ``f(m, pfn, 0)``, ``f(m, pfn, MIGRATE_MOVABLE)`` and
    ``f(m, pfn, m.pb_mt[pb])`` was compiled three times (Literal[int](0),
    Literal[int](1), uint8), and 125 functions had 413 compiled variants.
    Here calls from compiled code widen integers to int64 first (the call
    site casts its arguments; numba does that for any matched signature), so
    each callee compiles once per non-integer shape.
    """
    disp = _njit(cache=True, _nrt=False)(fn)
    plain = getattr(disp, "get_call_template", None)
    if plain is None:               # NUMBA_DISABLE_JIT=1: a plain function
        return disp

    def get_call_template(args, kws):
        return plain(tuple(_widen(a) for a in args),
                     {k: _widen(v) for k, v in kws.items()})

    disp.get_call_template = get_call_template
    return disp


def njit_inline(fn):
    """For the allocation hot path: inlined at numba-IR level into every caller.

    A call that is not inlined passes the machine namedtuple flattened into
    ~200 scalar arguments (measured ~25 ns a call); the hot path therefore
    compiles into one function per entry point.
    """
    return _njit(cache=True, _nrt=False, inline="always")(fn)
