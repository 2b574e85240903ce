"""``njit`` / ``njit_inline`` for the SPB layer: the machine model's own.

Since the SPB layer is wired into the buddy allocator (buddy.py inlines its
hooks), ``spbsim.mm.jit`` names its single cache directory after a hash of
every file under ``spbsim/mm`` including this sub-package, so an edit here
recompiles everything and never leaves a stale inlined copy.
"""
from ..jit import cache_dir, njit, njit_inline

__all__ = ["njit", "njit_inline", "spb_cache_dir"]


def spb_cache_dir():
    """The cache directory (shared with spbsim.mm)."""
    return cache_dir()
