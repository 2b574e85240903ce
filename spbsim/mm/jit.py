"""One place that decides how the machine model is compiled.

Details: docs/model.md ("Module notes", `spbsim.mm.jit`).
"""
import ast
import hashlib
import os
import sys
from functools import lru_cache
from pathlib import Path

import numba
from numba import njit as _njit
from numba.core import types

from . import jit_numba

__all__ = ["njit", "njit_inline", "cache_dir", "compiled_closure"]

_MM = Path(__file__).resolve().parent
_PKG = _MM.parent


@lru_cache(maxsize=None)
def _source_hash(extra=frozenset()):
    h = hashlib.sha1((numba.__version__ + "/opt" + str(numba.config.OPT)
                      + jit_numba.rules_key()).encode())
    for p in sorted(_MM.rglob("*.py")):
        if "__numba_cache__" in p.parts:
            continue
        h.update(p.name.encode())
        h.update(p.read_bytes())
    for p in sorted(extra):
        h.update(str(p.relative_to(_PKG)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _module_file(name):
    """spbsim.a.b -> spbsim/a/b.py (or the package's __init__.py), else None."""
    parts = name.split(".")
    if parts[0] != "spbsim":
        return None
    rel = Path(*parts[1:])
    cands = [_PKG / rel / "__init__.py"]
    if len(parts) > 1:
        cands.insert(0, _PKG / rel.with_suffix(".py"))
    return next((p for p in cands if p.is_file()), None)


def _top_level_imports(path):
    """The spbsim modules ``path`` imports at module level (what its compiled
    code can see as globals), as files."""
    # the package a relative import starts from
    pkg = ".".join(("spbsim",) + path.relative_to(_PKG).parent.parts)
    out = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                full = ".".join(base[:len(base) - (node.level - 1)]
                                + ([node.module] if node.module else []))
            else:
                full = node.module or ""
            for a in node.names:
                # a submodule, or a name bound in the module (or package) ``full``
                f = _module_file(f"{full}.{a.name}") or _module_file(full)
                if f is not None:
                    out.add(f)
        elif isinstance(node, ast.Import):
            out.update(f for f in map(_module_file, (a.name for a in node.names)) if f)
    return out


@lru_cache(maxsize=None)
def compiled_closure(path):
    """The files outside spbsim/mm whose change must invalidate the compiled
    code of ``path``: the file itself and, transitively, the spbsim modules it
    imports at module level (their constants and compiled callees are baked
    into its compiled code; numba stamps a cached function with its own file
    only).  Empty for files inside spbsim/mm, which the cache directory's
    name covers already."""
    path = Path(path).resolve()
    if _MM in path.parents:
        return frozenset()
    seen, todo = set(), [path]
    while todo:
        f = todo.pop()
        if f in seen or _MM in f.parents or _PKG not in f.parents:
            continue
        seen.add(f)
        todo.extend(_top_level_imports(f))
    return frozenset(seen)


def cache_dir(extra=()):
    """Where compiled code is cached: $NUMBA_CACHE_DIR (or the package, or
    ~/.cache/spbsim when the package is read-only) / spbsim-<hash of spbsim/mm
    and of the ``extra`` files>."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        pkg = _PKG / "__numba_cache__"
        try:
            pkg.mkdir(exist_ok=True)
            base = str(pkg) if os.access(pkg, os.W_OK) else None
        except OSError:
            base = None
        if not base:
            base = os.path.join(os.path.expanduser("~"), ".cache", "spbsim")
    return os.path.join(base, "spbsim-" + _source_hash(frozenset(extra)))


numba.config.CACHE_DIR = cache_dir()


def _jit(fn, **options):
    """numba's njit with caching, the cache directory chosen by what the
    function's compiled code depends on (compiled_closure)."""
    mod = sys.modules.get(fn.__module__)
    path = getattr(mod, "__file__", None)
    extra = compiled_closure(path) if path else frozenset()
    # no_cfunc_wrapper: no C-callable wrapper (for cfunc pointers and
    # first-class function values; spbsim uses neither)
    options = dict(cache=True, _nrt=False, no_cfunc_wrapper=True, **options)
    if not extra:
        return _njit(**options)(fn)
    was = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = cache_dir(extra)
    try:
        return _njit(**options)(fn)
    finally:
        numba.config.CACHE_DIR = was


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
    disp = _jit(fn)
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
    return _jit(fn, inline="always")
