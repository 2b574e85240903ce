"""Superpageblock (SPB) metadata and list layer of Rik van Riel's 1GB SPB series.

The allocator built on it is in ``alloc``, ``relax`` and ``work``; docs/spb.md
maps every function to the series.

- ``state``: the ``SPB`` arrays, ``new_spb(geometry)``, ``init_spb_from_mem(spb, mem)``
- ``lists``: categories, fullness buckets, ``spb_update_list`` and the
  counter hooks (compiled)
- ``debug``: ``spb_debug_check``, ``spb_dump`` (debugfs ``superpageblocks``)
- ``params``: enums, constants, [SIM] defaults of the spec's [U] items
"""
from .params import *  # noqa: F401,F403
from .state import SPB, init_spb_from_mem, new_spb, spb_bytes, spb_slots  # noqa: F401
