"""A workqueue for background items (kernel workqueues and delayed work):
items are (due time, kind, argument); the engine runs the due ones between
requests.  Kinds dispatch to compiled functions; later mechanisms (the SPB
defrag worker, slab shrink work) add their kinds here.
"""
from .const import KV_6_1
from .jit import njit
from .pcp import decay_pcp_high
from .state import CFG, CUR_CLOCK

__all__ = ["queue_work", "run_due_work", "WQ_VMSTAT_UPDATE", "WQ_NAMES"]

WQ_VMSTAT_UPDATE = 0          # vmstat_update(): per-cpu pcp decay, every second
WQ_NAMES = ("vmstat_update",)
VMSTAT_INTERVAL_NS = 1_000_000_000
_CFG_VERSION = CFG["version"]


@njit
def queue_work(m, kind, arg, due_ns):
    """queue_delayed_work(): returns False if the queue is full."""
    n = m.wq_n[0]
    if n >= m.wq_due.shape[0]:
        m.wq_n[1] += 1
        return False
    m.wq_due[n] = due_ns
    m.wq_kind[n] = kind
    m.wq_arg[n] = arg
    m.wq_n[0] = n + 1
    if due_ns < m.wq_n[2]:          # the engine checks only the earliest due time
        m.wq_n[2] = due_ns
    return True


@njit
def _run(m, kind, arg, now):
    if kind == WQ_VMSTAT_UPDATE:
        # v6.1's refresh_cpu_vm_stats() drains only remote nodes' lists ("We
        # never drain zones local to this processor"); decay_pcp_high() is v6.7's
        if m.cfg[_CFG_VERSION] != KV_6_1:
            for z in range(m.pcp.shape[0]):
                for cpu in range(m.pcp.shape[1]):
                    decay_pcp_high(m, z, cpu)
        queue_work(m, WQ_VMSTAT_UPDATE, 0, now + VMSTAT_INTERVAL_NS)


@njit
def run_due_work(m, now):
    """Run every item due at or before ``now`` (in due order); returns the
    number run and keeps m.wq_next (the earliest due time) up to date."""
    ran = 0
    while True:
        n = m.wq_n[0]
        best = -1
        for i in range(n):
            if m.wq_due[i] <= now and (best < 0 or m.wq_due[i] < m.wq_due[best]):
                best = i
        if best < 0:
            break
        kind = m.wq_kind[best]
        arg = m.wq_arg[best]
        m.wq_due[best] = m.wq_due[n - 1]
        m.wq_kind[best] = m.wq_kind[n - 1]
        m.wq_arg[best] = m.wq_arg[n - 1]
        m.wq_n[0] = n - 1
        m.cur[CUR_CLOCK] = now
        _run(m, kind, arg, now)
        ran += 1
    nxt = 1 << 62
    for i in range(m.wq_n[0]):
        nxt = min(nxt, m.wq_due[i])
    m.wq_n[2] = nxt
    return ran
