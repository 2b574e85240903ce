"""Python-side views of the SPB allocator's state: summary, time-series
columns, stuck SPBs (plain Python over the SPB arrays)."""
import numpy as np

from ..mm.spb.params import (NR_SB_FULLNESS, SB_TAINTED, SPB_DEFRAG_IDLE,
                     SPB_DEFRAG_NOOP_COOLDOWN_NS, SPB_LIST_EMPTY, SPB_NEVER_NS,
                     SPB_OUTCOME_NAMES, SPB_STAT_NAMES, spb_list_name)

__all__ = ["STUCK_MARGIN_NS", "stuck_spbs", "spb_allocator_summary", "spb_sample_columns"]

#: [SIM] reading of the bug of spec §5.1 (v1 43/45: SPBs "stuck in an
#: expired-cooldown state"): a tainted SPB is stuck when its no-progress stamp
#: is older than the cooldown by more than 100 s (while allocations keep arriving)
STUCK_MARGIN_NS = 100_000_000_000


def _tainted(spb):
    lid = spb.list_id.astype(np.int64)
    return (lid >= SB_TAINTED * NR_SB_FULLNESS) & (lid < (SB_TAINTED + 1) * NR_SB_FULLNESS)


def _start_cond(spb):
    """spb_defrag_start_cond() (lists.py) over all slots."""
    from ..mm.spb.params import (SPB_CFG_DEFRAG, SPB_CFG_RESERVE, SPB_DEFRAG_V2_15,
                                 SPB_DEFRAG_V2_START_FREE_PB, SPB_DEFRAG_V2_START_NR_FREE,
                                 SPB_RESERVE_DYNAMIC, SPB_TAINTED_RESERVE,
                                 SPB_TAINTED_RESERVE_MIN, SPB_TAINTED_RESERVE_SHIFT)
    nr_free = spb.nr_free.astype(np.int64)
    free_pages = spb.nr_free_pages.astype(np.int64)
    if spb.cfg[SPB_CFG_DEFRAG] == SPB_DEFRAG_V2_15:
        return (nr_free <= SPB_DEFRAG_V2_START_NR_FREE) | (free_pages < SPB_DEFRAG_V2_START_FREE_PB * 512)
    if spb.cfg[SPB_CFG_RESERVE] == SPB_RESERVE_DYNAMIC:
        r = np.maximum(spb.total_pageblocks.astype(np.int64) >> SPB_TAINTED_RESERVE_SHIFT,
                       SPB_TAINTED_RESERVE_MIN)
    else:
        r = np.full(nr_free.shape, SPB_TAINTED_RESERVE, np.int64)
    return (nr_free < r) | (free_pages < r * 512)


def stuck_spbs(spb, now_ns, zone_alloc_since=None):
    """Slots of stuck SPBs: tainted, still below the defrag start threshold and
    holding movable pageblocks, idle, with a no-progress stamp older than
    SPB_DEFRAG_NOOP_COOLDOWN + 100 s, and no defrag run since then either
    (the last run, with or without progress, also ended more than that ago):
    the cooldown expired long ago and nothing re-ran the defrag (the bug that
    patch 43 of v1 fixed).  An SPB that a trigger keeps re-running is not
    stuck, whatever its old stamp says."""
    last = spb.defrag_last_no_progress_ns
    # every run stamps defrag_last_run_ns, a run without progress also the
    # no-progress stamp: an old last run implies an old no-progress stamp
    old = (last != SPB_NEVER_NS) & \
        (now_ns - spb.defrag_last_run_ns > SPB_DEFRAG_NOOP_COOLDOWN_NS + STUCK_MARGIN_NS)
    idle = spb.defrag_state == SPB_DEFRAG_IDLE
    need = _start_cond(spb) & (spb.nr_movable > 0)
    slots = np.flatnonzero(_tainted(spb) & old & idle & need)
    if zone_alloc_since is not None:
        # "while allocations keep arriving": pages are still being allocated in
        # the SPB's zone after the SPB counts as stuck (its stamp older than
        # the cooldown by the margin).  A zone nobody allocates from any more
        # cannot re-trigger anything, with or without patch 43.
        slots = np.array([i for i in slots if zone_alloc_since(
            int(spb.zone[i]), int(last[i]) + SPB_DEFRAG_NOOP_COOLDOWN_NS + STUCK_MARGIN_NS) > 0],
            np.int64)
    return slots


def spb_sample_columns(spb, now_ns, zone_alloc_since=None):
    """Time-series columns (zeros on stock machines, whose SPB state is empty)."""
    row = {"stuck_spbs": int(stuck_spbs(spb, now_ns, zone_alloc_since).size)
           if spb.start_pfn.size else 0,
           "nr_tainted_spbs": int(spb.nr_tainted_spbs.sum())}
    tot = spb.stat.sum(axis=0)
    for i, n in enumerate(SPB_STAT_NAMES):
        row[n] = int(tot[i])
    for i, n in enumerate(SPB_OUTCOME_NAMES):
        row[f"spb_outcome_{n}"] = int(spb.outcome[i])
    return row


def spb_allocator_summary(machine, now_ns, zone_alloc_since=None):
    """The summary.json section of an SPB run."""
    spb = machine.mem.spb
    stuck = stuck_spbs(spb, now_ns, zone_alloc_since)
    tot = spb.stat.sum(axis=0)
    walks = int(tot[SPB_STAT_NAMES.index("spb_alloc_walks")])
    visited = int(tot[SPB_STAT_NAMES.index("spb_spbs_visited")])
    lists = {}
    for z in range(spb.list_nr.shape[0]):
        for lid in range(spb.list_nr.shape[1]):
            n = int(spb.list_nr[z, lid])
            if n:
                lists[spb_list_name(lid)] = lists.get(spb_list_name(lid), 0) + n
    hist = spb.visit_hist
    last = int(np.flatnonzero(hist)[-1]) + 1 if hist.any() else 0
    attempts = int(tot[SPB_STAT_NAMES.index("spb_claim_attempts")])
    success = int(tot[SPB_STAT_NAMES.index("spb_claim_success")])
    return {
        "preset": machine.spb_preset,
        "switches": dict(machine.spb_switches),
        "stuck_spbs": int(stuck.size),
        "stuck_slots": [int(i) for i in stuck],
        "nr_tainted_spbs": int(spb.nr_tainted_spbs.sum()),
        "empty_spbs": int(spb.list_nr[:, SPB_LIST_EMPTY].sum()),
        "lists": lists,
        "outcomes": {n: int(spb.outcome[i]) for i, n in enumerate(SPB_OUTCOME_NAMES)},
        "taint_by_pass": {("other" if i == 0 else n): int(spb.taint_by[i])
                          for i, n in enumerate(SPB_OUTCOME_NAMES)},
        "spbs_visited_per_walk": round(visited / walks, 3) if walks else None,
        "spbs_visited_hist": [int(x) for x in hist[:last]],
        "claim_success_rate": round(success / attempts, 4) if attempts else None,
        "stats": {n: int(tot[i]) for i, n in enumerate(SPB_STAT_NAMES)},
    }
