"""``njit`` / ``njit_inline`` for the SPB layer, with a cache keyed on its sources.

``spbsim.mm.jit`` names its cache directory after a hash of
``spbsim/mm/*.py`` only, so an edit to a file in this sub-package would leave
stale *inlined* copies of it in the cached code of other files (numba keys a
cached function on its own file's time stamp only).  Numba picks the cache
directory when a function is decorated, so these wrappers decorate under a
directory named after both hashes, then restore the global setting.
Compiled code here follows the same rule as the rest of the machine model:
no array allocation (``_nrt=False``).
"""
import hashlib
from pathlib import Path

import numba
from numba import njit as _njit

from ..jit import cache_dir as _mm_cache_dir

__all__ = ["njit", "njit_inline", "spb_cache_dir"]


def _spb_source_hash():
    h = hashlib.sha1()
    here = Path(__file__).resolve().parent
    for p in sorted(here.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def spb_cache_dir():
    """spbsim.mm.jit.cache_dir() + '-spb' + a hash of spbsim/mm/spb/*.py."""
    return _mm_cache_dir() + "-spb" + _spb_source_hash()


_CACHE_DIR = spb_cache_dir()


def _decorate(fn, **kw):
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = _CACHE_DIR
    try:
        return _njit(cache=True, _nrt=False, **kw)(fn)
    finally:
        numba.config.CACHE_DIR = saved


def njit(fn):
    return _decorate(fn)


def njit_inline(fn):
    """Inlined at numba-IR level into every caller (as spbsim.mm.jit.njit_inline)."""
    return _decorate(fn, inline="always")
