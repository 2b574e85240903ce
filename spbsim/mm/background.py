"""The node's background threads between requests: kswapd (balance_pgdat),
kcompactd (kcompactd_do_work and its proactive compaction), the delayed work
items, and the SPB series' queued work.  Callers run :func:`background`
whenever :func:`background_due` says something is pending at ``now``.
"""
from .compaction import (fragmentation_score_node, kcompactd_do_work, kswapd_is_running,
                         proactive_compact_node)
from .jit import njit, njit_inline
from .spb.work import spb_run_pending
from .state import CFG, NODE
from .vmscan import balance_pgdat
from .workqueue import run_due_work

__all__ = ["background", "background_due"]

_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KCD_WAIT = NODE["kcompactd_wait"]
_N_KSWAPD_LAST = NODE["kswapd_last_ns"]
_N_PROACTIVE_NEXT = NODE["proactive_next_ns"]
_CFG_SPB = CFG["spb"]
_CFG_KSWAPD_RATE = CFG["kswapd_rate"]
_CFG_RECLAIM_EXTERNAL = CFG["reclaim_external"]


@njit_inline
def background_due(m, now):
    """Is kswapd or kcompactd awake, or timed work due at ``now``?"""
    return m.node[_N_KSWAPD_WAIT] != 0 or m.node[_N_KCD_WAIT] != 0 \
        or now >= m.node[_N_PROACTIVE_NEXT] or now >= m.wq_n[2]


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
        kcompactd_do_work(m, cpu)
    # proactive compaction: HPAGE_FRAG_CHECK_INTERVAL_MSEC, backing off to 32 s
    # when a run did not lower the score
    if now >= m.wq_n[2]:
        run_due_work(m, now)
    # the SPB series' queued work (defrag workers, slab shrink, evacuation)
    if m.cfg[_CFG_SPB] != 0:
        spb_run_pending(m, now, cpu)
    # (not while kswapd runs: should_proactive_compact_node)
    if now >= m.node[_N_PROACTIVE_NEXT]:
        interval = 500_000_000
        if not kswapd_is_running(m):
            before = fragmentation_score_node(m)
            if proactive_compact_node(m, cpu) and fragmentation_score_node(m) >= before:
                interval = 500_000_000 << 6
        m.node[_N_PROACTIVE_NEXT] = now + interval
