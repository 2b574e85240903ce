"""The machine's on/off switches that a scenario's ``[scenario]`` table sets.

Each is declared here once, with its default and meaning: ``Machine``'s
keyword defaults and docstring, the scenario parser (keys, defaults,
validation), ``Scenario`` and the engine read this table.
"""
from __future__ import annotations

import textwrap

__all__ = ["MACHINE_SWITCHES", "SWITCH_DEFAULTS", "switches_doc"]

#: name -> (default, meaning)
MACHINE_SWITCHES = {
    "defrag_mode": (False, "vm.defrag_mode: ALLOC_NOFRAGMENT on every attempt (no "
                           "fallback into other types' pageblocks before reclaim and "
                           "compaction), kswapd woken for at least pageblock order"),
    "swap": (True, "anonymous memory can be swapped out (reclaim scans the anon LRU)"),
    "migrate_split_large": (True, "a migration (alloc_contig_range(), compaction, the SPB "
                                  "evacuation) splits a large block whose target cannot be "
                                  "allocated and migrates its base pages (migrate_pages() on "
                                  "-ENOMEM, as the kernel); false: the attempt stops there"),
    "kcompactd_concurrent": (True, "[SIM] kcompactd runs beside the requests: its run "
                                   "(kcompactd_do_work, proactive compaction) takes its "
                                   "[SIM] time (compaction_migrate_us, compaction_scan_ns) "
                                   "while later requests are served, pausing once its clock "
                                   "passes theirs; false: each run is done at once, between "
                                   "two requests"),
}

SWITCH_DEFAULTS = {k: d for k, (d, _) in MACHINE_SWITCHES.items()}


def switches_doc(indent="      "):
    """Docstring lines, one entry per switch: ``name (default): meaning.``"""
    return "".join(textwrap.fill(f"{k} (default {d}): {doc}.", 78, initial_indent=indent,
                                 subsequent_indent=indent + "  ") + "\n"
                   for k, (d, doc) in MACHINE_SWITCHES.items())
