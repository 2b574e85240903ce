"""Pageblock types of the what-if replay's start state: the type the trace's
first showing event reveals (spbsim.trace.start.first_types) is kept by the
fit to pagetypeinfo (spbsim.trace.replay.initial_block_types)."""
import numpy as np
import pytest

from spbsim.mm.const import (MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_TYPES,
                             MIGRATE_UNMOVABLE, NR_PAGE_ORDERS, pageblock_nr_pages)
from spbsim.trace.ftrace import (MM_PAGE_ALLOC, MM_PAGE_ALLOC_EXTFRAG, MM_PAGE_ALLOC_ZONE_LOCKED,
                                 MM_PAGE_FREE, MM_PAGE_PCPU_DRAIN)
from spbsim.trace.replay import initial_block_types
from spbsim.trace.start import first_types

from oracle import oracle_root

B = pageblock_nr_pages


def _scan(events, nb=16, lo=0):
    """events: (kind, pfn, order, migratetype, fallback_order,
    fallback_migratetype[, cpu[, isolate range end]])."""
    ev = [tuple(e) + (0, -1)[len(e) - 6:] for e in events]
    arr = [np.asarray(c, np.int64) for c in zip(*ev)]
    rev = np.full(nb, -1, np.int8)
    last = np.full((4, 3), -1, np.int64)
    first_types(arr[0], arr[1], arr[2], arr[3], arr[4], arr[5], arr[6], arr[7], lo,
                len(events), rev, last)
    return rev


def test_first_event_showing_a_block_gives_its_start_type():
    # kind, pfn, order, migratetype, fallback_order, fallback_migratetype
    rev = _scan([
        (MM_PAGE_FREE, 3 * B + 5, 0, 0, 0, 0),               # shows nothing
        (MM_PAGE_ALLOC, 3 * B + 6, 0, 2, 0, 0),              # the request's type: nothing
        (MM_PAGE_ALLOC_ZONE_LOCKED, 3 * B + 7, 0, MIGRATE_UNMOVABLE, 0, 0),
        (MM_PAGE_PCPU_DRAIN, 5 * B, 3, MIGRATE_RECLAIMABLE, 0, 0),
        # a claim of an order-10 buddy over blocks 8 and 9: their type before it
        (MM_PAGE_ALLOC_EXTFRAG, 8 * B, 0, MIGRATE_UNMOVABLE, 10, MIGRATE_MOVABLE),
        (MM_PAGE_ALLOC_ZONE_LOCKED, 8 * B + 1, 0, MIGRATE_UNMOVABLE, 0, 0),   # after: ignored
        (MM_PAGE_ALLOC_ZONE_LOCKED, 3 * B + 8, 0, MIGRATE_MOVABLE, 0, 0),     # not first
        (MM_PAGE_ALLOC_ZONE_LOCKED, 11 * B, 0, 4, 0, 0),     # highatomic: cannot tell
        (MM_PAGE_PCPU_DRAIN, -1, 0, 0, 0, 0),                # no pfn
    ])
    want = np.full(16, -1)
    want[3], want[5], want[8], want[9], want[11] = (MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE,
                                                    MIGRATE_MOVABLE, MIGRATE_MOVABLE, -2)
    assert rev.tolist() == want.tolist()
    # events before ``lo`` are not read
    assert _scan([(MM_PAGE_PCPU_DRAIN, 2 * B, 0, 1, 0, 0)], lo=1)[2] == -1


def test_a_partial_claim_shows_the_type_before_it():
    """try_to_claim_block() retypes the block, then __rmqueue_smallest() takes
    the page with a zone_locked line of the new type; the extfrag line that
    follows on the same cpu names the type before."""
    p = 6 * B + 0x1f0                    # an order-3 page inside an order-8 fallback buddy
    rev = _scan([
        (MM_PAGE_ALLOC_ZONE_LOCKED, p, 3, MIGRATE_UNMOVABLE, 0, 0, 1),
        (MM_PAGE_ALLOC_EXTFRAG, p, 3, MIGRATE_UNMOVABLE, 8, MIGRATE_MOVABLE, 1),
        # on another cpu, a zone_locked line then an unrelated extfrag keep their types
        (MM_PAGE_ALLOC_ZONE_LOCKED, 2 * B, 0, MIGRATE_RECLAIMABLE, 0, 0, 2),
        (MM_PAGE_ALLOC_EXTFRAG, 12 * B, 0, MIGRATE_UNMOVABLE, 9, MIGRATE_MOVABLE, 3),
    ])
    assert rev[6] == MIGRATE_MOVABLE
    assert rev[7] == -1                  # the aligned fallback buddy stays in block 6
    assert rev[2] == MIGRATE_RECLAIMABLE and rev[12] == MIGRATE_MOVABLE


def test_blocks_first_named_by_compaction_isolation_cannot_tell():
    """__isolate_free_page() may retype the blocks the free scanner isolates
    from: a block first named inside an isolate_freepages range is unknown."""
    rev = _scan([
        (MM_PAGE_PCPU_DRAIN, 4 * B, 0, MIGRATE_UNMOVABLE, 0, 0, 0, -1),
        (0, 3 * B, 0, 0, 0, 0, 0, 6 * B),                    # range [3B, 6B)
        (MM_PAGE_PCPU_DRAIN, 5 * B, 0, MIGRATE_UNMOVABLE, 0, 0, 0, -1),
        (MM_PAGE_PCPU_DRAIN, 6 * B, 0, MIGRATE_UNMOVABLE, 0, 0, 0, -1),
    ])
    assert rev[3:7].tolist() == [-2, MIGRATE_UNMOVABLE, -2, MIGRATE_UNMOVABLE]


def _fit(known=None):
    nb = 4
    flags = np.zeros(nb * B, np.uint64)          # kernel pages without telling bits
    block_count = np.zeros((1, MIGRATE_TYPES), np.int64)
    block_count[0, MIGRATE_UNMOVABLE] = 1
    block_count[0, MIGRATE_RECLAIMABLE] = 1
    block_count[0, MIGRATE_MOVABLE] = 2
    free_count = np.zeros((1, MIGRATE_TYPES, NR_PAGE_ORDERS), np.int64)
    return initial_block_types(flags, np.zeros(0, np.int64), np.zeros(0, np.int64),
                               [(0, 0, nb * B)], block_count, free_count, nb, known=known)


def test_fit_keeps_revealed_types_and_the_counts():
    plain = _fit()
    known = np.full(4, -1, np.int8)
    # two blocks the plain fit types otherwise
    u = next(b for b in range(4) if plain[b] != MIGRATE_UNMOVABLE)
    r = next(b for b in range(4) if b != u and plain[b] != MIGRATE_RECLAIMABLE)
    known[u], known[r] = MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE
    got = _fit(known)
    assert got[u] == MIGRATE_UNMOVABLE and got[r] == MIGRATE_RECLAIMABLE
    assert np.bincount(got, minlength=MIGRATE_TYPES).tolist() == \
        np.bincount(plain, minlength=MIGRATE_TYPES).tolist()


RUN1 = oracle_root() / "run1-mixed-s1"


@pytest.mark.skipif(not (RUN1 / "trace.txt.xz").exists(), reason=f"no oracle recording at {RUN1}")
def test_what_if_start_keeps_every_type_the_trace_reveals():
    from spbsim.machine import Machine
    from spbsim.trace.validate import open_recording, recorded_machine
    from spbsim.trace.whatif import replay_whatif
    rec = open_recording(RUN1)
    rm = recorded_machine(rec)
    r = replay_whatif(rec.trace, Machine(**rm.machine_kwargs), snapshots_dir=rec.snapshots_dir,
                      pfn_ranges=rm.pfn_ranges(), trace_cpus=rm.cpu_ids, max_lines=300_000)
    st = r["start"]
    assert st["types_revealed"] > 50
    assert st["types_revealed_kept"] == st["types_revealed"]


_LINES = {
    "mark": "           agent-219     [001] .....    {ts:.6f}: tracing_mark_write: "
            "oracle_snap_end seq=1 tag=start",
    "iso": "      kcompactd0-39      [001] .....    {ts:.6f}: mm_compaction_isolate_freepages: "
           "range=(0x100000 ~ 0x100400) nr_scanned=1024 nr_taken={n}",
    "drain": "         kworker-12      [000] d..3.    {ts:.6f}: mm_page_pcpu_drain: "
             "page=000000001e837b28 pfn={pfn:#x} order=0 migratetype=0",
}


@pytest.mark.parametrize("taken,want", [(300, -2), (10, MIGRATE_UNMOVABLE)])
def test_stream_reads_isolation_ranges_that_could_retype(tmp_path, taken, want):
    """The what-if stream marks blocks first named inside a free-scanner range
    unknown only when the range took enough pages for an order >=
    pageblock_order - 1 buddy (__isolate_free_page retypes only those)."""
    from spbsim.trace import whatif as W
    lines = [_LINES["mark"].format(ts=1.0), _LINES["iso"].format(ts=1.1, n=taken),
             _LINES["drain"].format(ts=1.2, pfn=0x100200)]
    p = tmp_path / "trace.txt"
    p.write_text("\n".join(lines) + "\n")
    touch = {"seen": np.zeros(0x140000, np.uint8), "start_free": np.zeros(0x140000, np.uint8),
             "out": np.zeros((16, 6), np.int64), "n": 0,
             "rev": np.full(0x140000 >> 9, -1, np.int8),
             "rev_last": np.full((8, 3), -1, np.int64)}
    stream = W._Stream(p, lenient=False, progress=False, max_lines=None, snapshot_every_s=None,
                       touch=touch)
    for _ in stream.chunks():
        pass
    assert touch["rev"][0x100200 >> 9] == want
