"""spbsim: a simulator of the Linux physical page allocator.

The stock allocator of mm/page_alloc.c (buddy lists, migratetypes, pageblocks,
pcp lists, watermarks, claim/steal fallbacks, highatomic, defrag_mode) on
numpy state with a numba-compiled hot path.  Start with :class:`Machine`.
"""
from .errors import ConfigError, FreeError, SpbsimError
from .machine import InvariantError, Machine

__all__ = ["Machine", "InvariantError", "SpbsimError", "ConfigError", "FreeError"]
__version__ = "0.1.0"
