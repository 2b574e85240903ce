"""The node's background threads between requests: kswapd (balance_pgdat),
kcompactd (kcompactd_do_work and its proactive compaction), the delayed work
items, and the SPB series' queued work.  Callers run :func:`background`
whenever :func:`background_due` says something is pending at ``now``.
"""
from .compaction import (COMPACT_MAX_DEFER_SHIFT, HPAGE_FRAG_CHECK_INTERVAL_NS,
                         fragmentation_score_node, kcompactd_do_work_begin, kcompactd_node_suitable,
                         kcompactd_run, kswapd_is_running, kswapd_woke_by, proactive_compact_begin)
from .const import NEVER_NS
from .jit import njit, njit_inline
from .spb.work import spb_run_pending
from .state import CFG, KCD_TASK_NONE, KCD_TASK_PROACTIVE, NODE
from .vmscan import balance_pgdat
from .workqueue import run_due_work

__all__ = ["background", "background_due"]

_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KCD_WAIT = NODE["kcompactd_wait"]
_N_KCD_ORDER = NODE["kcompactd_max_order"]
_N_KSWAPD_LAST = NODE["kswapd_last_ns"]
_N_KCD_TIMEOUT = NODE["kcompactd_timeout_ns"]
_N_KCD_CLOCK = NODE["kcompactd_clock_ns"]
_N_KCD_RUN_ORDER = NODE["kcompactd_run_order"]
_CFG_SPB = CFG["spb"]
_CFG_KSWAPD_RATE = CFG["kswapd_rate"]
_CFG_RECLAIM_EXTERNAL = CFG["reclaim_external"]
_CFG_PROACTIVE = CFG["compaction_proactiveness"]
_CFG_CONCURRENT = CFG["kcompactd_concurrent"]
_N_KCD_TASK = NODE["kcompactd_task"]
_N_KCD_TASK_SCORE = NODE["kcompactd_task_score"]


@njit_inline
def background_due(m, now):
    """Is kswapd or kcompactd awake, or timed work due at ``now``?"""
    return m.node[_N_KSWAPD_WAIT] != 0 or m.node[_N_KCD_WAIT] != 0 \
        or now >= m.node[_N_KCD_TIMEOUT] or now >= m.wq_n[2]


@njit_inline
def kcompactd_timeout(m):
    """kcompactd()'s default wait: HPAGE_FRAG_CHECK_INTERVAL_MSEC, or
    MAX_SCHEDULE_TIMEOUT with compaction_proactiveness 0."""
    return HPAGE_FRAG_CHECK_INTERVAL_NS if m.cfg[_CFG_PROACTIVE] != 0 else NEVER_NS


@njit
def kcompactd_continue(m, now, cpu):
    """kcompactd's run (kcompactd_run) goes on: at once, or with
    kcompactd_concurrent up to ``now``, its wait then timing out where its
    clock stands, so the next request past that resumes it.  Once the run
    ends kcompactd() waits again: HPAGE_FRAG_CHECK_INTERVAL_MSEC, <<
    COMPACT_MAX_DEFER_SHIFT after a proactive run that did not lower the
    node's score, not at all for an order recorded meanwhile
    (kcompactd_work_requested())."""
    task = m.node[_N_KCD_TASK]
    score0 = m.node[_N_KCD_TASK_SCORE]          # (kcompactd_run clears it at the end)
    if not kcompactd_run(m, now if m.cfg[_CFG_CONCURRENT] != 0 else -1, cpu):
        m.node[_N_KCD_TIMEOUT] = m.node[_N_KCD_CLOCK]
        return
    interval = kcompactd_timeout(m)
    if task == KCD_TASK_PROACTIVE and fragmentation_score_node(m) >= score0:
        interval = HPAGE_FRAG_CHECK_INTERVAL_NS << COMPACT_MAX_DEFER_SHIFT
    if m.node[_N_KCD_ORDER] > 0:
        interval = 0
    m.node[_N_KCD_TIMEOUT] = m.node[_N_KCD_CLOCK] + interval


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
        if now < m.node[_N_KCD_CLOCK] or m.node[_N_KCD_TASK] != KCD_TASK_NONE:
            # still in its last run (no sleeper on kcompactd_wait): the order
            # stays recorded, and kcompactd_work_requested() runs it when
            # that run ends, unless kcompactd_do_work() drops it there as no
            # higher than the order it ran for
            if m.node[_N_KCD_ORDER] <= m.node[_N_KCD_RUN_ORDER]:
                m.node[_N_KCD_ORDER] = 0
            else:
                m.node[_N_KCD_TIMEOUT] = min(m.node[_N_KCD_TIMEOUT], m.node[_N_KCD_CLOCK])
        elif kcompactd_node_suitable(m):
            # kcompactd's clock runs from here through the run's [SIM]
            # duration; its next wait starts where the run ended
            m.node[_N_KCD_CLOCK] = now
            if kcompactd_do_work_begin(m):
                kcompactd_continue(m, now, cpu)
            else:
                m.node[_N_KCD_TIMEOUT] = m.node[_N_KCD_CLOCK] + kcompactd_timeout(m)
    if now >= m.wq_n[2]:
        run_due_work(m, now)
    # the SPB series' queued work (defrag workers, slab shrink, evacuation)
    if m.cfg[_CFG_SPB] != 0:
        spb_run_pending(m, now, cpu)
    # kcompactd's wait timed out (kcompactd(): HPAGE_FRAG_CHECK_INTERVAL_MSEC
    # after its last run, << COMPACT_MAX_DEFER_SHIFT after a proactive run
    # that did not lower the node's score), or its paused run is due again:
    # a pending order is kcompactd_work_requested(), so kcompactd_do_work();
    # else proactive compaction (not while kswapd runs:
    # should_proactive_compact_node; in a replay, also not once the
    # recorded kswapd woke: kswapd_woke_by).  With compaction_proactiveness
    # 0 kcompactd waits for a wake-up only.
    if now >= m.node[_N_KCD_TIMEOUT]:
        if m.node[_N_KCD_TASK] != KCD_TASK_NONE:
            kcompactd_continue(m, now, cpu)
            return
        m.node[_N_KCD_CLOCK] = now
        if m.node[_N_KCD_ORDER] > 0:
            if kcompactd_do_work_begin(m):
                kcompactd_continue(m, now, cpu)
                return
        elif m.cfg[_CFG_PROACTIVE] != 0 and not kswapd_is_running(m) \
                and not kswapd_woke_by(m, now) and proactive_compact_begin(m):
            kcompactd_continue(m, now, cpu)
            return
        m.node[_N_KCD_TIMEOUT] = m.node[_N_KCD_CLOCK] + kcompactd_timeout(m)
