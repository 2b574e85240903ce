"""The node's background threads between requests: kswapd (balance_pgdat),
kcompactd (kcompactd_do_work and its proactive compaction), the delayed work
items, and the SPB series' queued work.  Callers run :func:`background`
whenever :func:`background_due` says something is pending at ``now``.
"""
from .compaction import (COMPACT_MAX_DEFER_SHIFT, HPAGE_FRAG_CHECK_INTERVAL_NS,
                         fragmentation_score_node, kcompactd_do_work, kcompactd_node_suitable,
                         kswapd_is_running, proactive_compact_node)
from .jit import njit, njit_inline
from .spb.work import spb_run_pending
from .state import CFG, NODE
from .vmscan import balance_pgdat
from .workqueue import run_due_work

__all__ = ["background", "background_due"]

_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KCD_WAIT = NODE["kcompactd_wait"]
_N_KCD_ORDER = NODE["kcompactd_max_order"]
_N_KSWAPD_LAST = NODE["kswapd_last_ns"]
_N_KCD_TIMEOUT = NODE["kcompactd_timeout_ns"]
_CFG_SPB = CFG["spb"]
_CFG_KSWAPD_RATE = CFG["kswapd_rate"]
_CFG_RECLAIM_EXTERNAL = CFG["reclaim_external"]
_CFG_PROACTIVE = CFG["compaction_proactiveness"]


@njit_inline
def background_due(m, now):
    """Is kswapd or kcompactd awake, or timed work due at ``now``?"""
    return m.node[_N_KSWAPD_WAIT] != 0 or m.node[_N_KCD_WAIT] != 0 \
        or now >= m.node[_N_KCD_TIMEOUT] or now >= m.wq_n[2]


@njit
def background(m, now, cpu):
    """kswapd and kcompactd, when woken (they run between requests).  kswapd
    reclaims at most kswapd_rate pages per simulated second since it last ran."""
    if m.node[_N_KSWAPD_WAIT] != 0:
        dt = now - m.node[_N_KSWAPD_LAST]
        if m.cfg[_CFG_RECLAIM_EXTERNAL] != 0:
            m.node[_N_KSWAPD_LAST] = now
            balance_pgdat(m, cpu, 0)
        elif dt > 0:
            budget = dt * m.cfg[_CFG_KSWAPD_RATE] // 1000000000
            if budget >= 32:
                m.node[_N_KSWAPD_LAST] = now
                balance_pgdat(m, cpu, budget)
    else:
        m.node[_N_KSWAPD_LAST] = now
    if m.node[_N_KCD_WAIT] != 0:
        # wakeup_kcompactd() wakes kcompactd only if kcompactd_node_suitable()
        # (asked here, before the next request); otherwise the order stays
        # pending until kcompactd's wait times out
        m.node[_N_KCD_WAIT] = 0
        if kcompactd_node_suitable(m):
            kcompactd_do_work(m, cpu)
            m.node[_N_KCD_TIMEOUT] = now + HPAGE_FRAG_CHECK_INTERVAL_NS
    if now >= m.wq_n[2]:
        run_due_work(m, now)
    # the SPB series' queued work (defrag workers, slab shrink, evacuation)
    if m.cfg[_CFG_SPB] != 0:
        spb_run_pending(m, now, cpu)
    # kcompactd's wait timed out (kcompactd(): HPAGE_FRAG_CHECK_INTERVAL_MSEC
    # after its last run, << COMPACT_MAX_DEFER_SHIFT after a proactive run
    # that did not lower the node's score): a pending order is
    # kcompactd_work_requested(), so kcompactd_do_work(); else proactive
    # compaction (not while kswapd runs: should_proactive_compact_node).
    # With compaction_proactiveness 0 kcompactd waits for a wake-up only.
    if now >= m.node[_N_KCD_TIMEOUT]:
        interval = HPAGE_FRAG_CHECK_INTERVAL_NS
        if m.cfg[_CFG_PROACTIVE] == 0:
            interval = 1 << 62              # MAX_SCHEDULE_TIMEOUT
        elif m.node[_N_KCD_ORDER] > 0:
            kcompactd_do_work(m, cpu)
        elif not kswapd_is_running(m):
            before = fragmentation_score_node(m)
            if proactive_compact_node(m, cpu) and fragmentation_score_node(m) >= before:
                interval = HPAGE_FRAG_CHECK_INTERVAL_NS << COMPACT_MAX_DEFER_SHIFT
        m.node[_N_KCD_TIMEOUT] = now + interval
