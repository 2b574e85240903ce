"""Workload sources -> request arrays, one engine tick at a time.

The stream depends only on the scenario and the seed, never on the machine's
state, so every policy sees the identical requests (paired comparisons).  A
source's ``limit`` is applied at run time by the engine (requests above it
are skipped and counted), which keeps the stream itself state-independent.
"""
import numpy as np

from ..mm.state import LRU_ANON, LRU_FILE, LRU_SLAB
from ..workload.kinds import FALLBACK_OWN_GFP, KINDS, TIMED

__all__ = ["FIRST_SOURCE_OWNER", "RequestStream", "kind_lru", "fallback_gfp"]

#: pg_owner ids: 0 none, 1 early kernel memory, 2 API; sources from 3
FIRST_SOURCE_OWNER = 3

_LRU = {"anon": LRU_ANON, "file": LRU_FILE, "slab": LRU_SLAB, None: -1}


def kind_lru(kind_info):
    """The reclaim list a kind's blocks join (-1: none)."""
    return _LRU[kind_info.lru]


def fallback_gfp(kind, gfp):
    """The gfp of the caller's order-0 fallback for a source of ``kind``
    asking with ``gfp`` (0: none; workload.kinds)."""
    fb = KINDS[kind].fallback_gfp
    return gfp if fb == FALLBACK_OWN_GFP else fb


class RequestStream:
    """Generates each tick's requests: Poisson arrivals per source at its rate
    (times phase and burst multipliers), uniform times within the tick, orders
    and lifetimes from the source's distributions, a uniform random cpu."""

    def __init__(self, scenario, seed=None):
        self.sc = scenario
        self.rng = np.random.Generator(np.random.PCG64(scenario.seed if seed is None else seed))
        self.sources = [s for s in scenario.sources if KINDS[s.kind].handler == TIMED]
        self.owner = {s.name: FIRST_SOURCE_OWNER + i for i, s in enumerate(scenario.sources)}
        self.checksum = 0

    def tick(self, t0, t1):
        """Requests in [t0, t1) seconds, sorted by time: dict of int64 arrays
        t_ns, src (owner id), order, life_ns (-1 = no timed free), cpu."""
        parts = []
        for s in self.sources:
            lo, hi = max(t0, s.start_s), min(t1, s.stop_s)
            if hi <= lo:
                n = 0
            else:
                rate = s.rate_per_s * self.sc.rate_scale(s.name, lo)
                n = int(self.rng.poisson(rate * (hi - lo)))
            if n == 0:
                continue
            t = self.rng.uniform(lo, hi, n)
            order = self.rng.choice(s.orders, size=n, p=s.order_probs)
            life = s.lifetime.sample(self.rng, n)
            life_ns = np.where(np.isfinite(life), np.round(life * 1e9), -1).astype(np.int64)
            parts.append((t, np.full(n, self.owner[s.name], np.int64), order.astype(np.int64),
                          life_ns))
        if not parts:
            e = np.zeros(0, np.int64)
            return dict(t_ns=e, src=e, order=e, life_ns=e, cpu=e)
        t = np.concatenate([p[0] for p in parts])
        idx = np.argsort(t, kind="stable")
        out = dict(t_ns=np.round(t[idx] * 1e9).astype(np.int64),
                   src=np.concatenate([p[1] for p in parts])[idx],
                   order=np.concatenate([p[2] for p in parts])[idx],
                   life_ns=np.concatenate([p[3] for p in parts])[idx])
        out["cpu"] = self.rng.integers(0, self.sc.cpus, t.size).astype(np.int64)
        # running checksum of everything a policy is shown (pairing proof)
        for k in ("t_ns", "src", "order", "life_ns", "cpu"):
            self.checksum = (self.checksum * 1000003 + int(np.bitwise_xor.reduce(
                out[k] * np.arange(1, t.size + 1, dtype=np.int64)))) % (1 << 61)
        return out
