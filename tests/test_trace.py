"""Tests of spbsim.trace.ftrace: the ftrace text reader.

Real data: the oracle run ``run1-mixed-s1`` found via $SPBSIM_ORACLE or
<repo>/../shared/oracle (skipped when absent).  Default tests read at most the
first 300,000 lines of its trace.txt.xz; whole-file tests are marked slow.
Every expected value below was read from that file (line numbers given).
"""
import gzip
import itertools
import json
import lzma
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spbsim.mm.gfp import parse_gfp
from spbsim.trace import ftrace as T
from spbsim.trace.ftrace import (
    EVENT_DTYPE, KIND_NAMES, LOST_EVENTS, MM_PAGE_ALLOC, MM_PAGE_ALLOC_EXTFRAG,
    MM_PAGE_ALLOC_ZONE_LOCKED, MM_PAGE_FREE, MM_PAGE_FREE_BATCHED, MM_PAGE_PCPU_DRAIN,
    OTHER_EVENT, TRACING_MARK_WRITE, LostEvents, MmPageAlloc, MmPageAllocExtfrag,
    MmPageAllocZoneLocked, MmPageFree, MmPageFreeBatched, MmPagePcpuDrain, OtherEvent,
    TraceFormatError, TraceReader, TracingMarkWrite, concat_batches, open_trace, parse_line,
    read_trace,
)

REPO = Path(__file__).resolve().parent.parent
RUN = "run1-mixed-s1"
HEAD_LINES = 300_000


from oracle import oracle_root as _oracle_root  # noqa: E402


def _run_dir():
    root = _oracle_root()
    for d in (root / RUN, root):
        if d.name == RUN and (d / "trace.txt.xz").exists():
            return d
    return None


RUN_DIR = _run_dir()
TRACE = RUN_DIR / "trace.txt.xz" if RUN_DIR else None
needs_oracle = pytest.mark.skipif(
    RUN_DIR is None,
    reason=f"oracle run {RUN} with trace.txt.xz not found under {_oracle_root()} "
           "(set SPBSIM_ORACLE to the oracle directory)")


@pytest.fixture(scope="module")
def head_lines():
    """The first HEAD_LINES lines of the oracle trace, without newlines."""
    with open_trace(TRACE) as f:
        return [ln.rstrip("\n") for ln in itertools.islice(f, HEAD_LINES)]


@pytest.fixture(scope="module")
def head_batch():
    r = TraceReader(TRACE, max_lines=HEAD_LINES)
    b = concat_batches(list(r.batches()))
    return r, b


def _row(batch, lineno):
    ev = batch.events
    i = int(np.searchsorted(ev["line"], lineno))
    assert ev["line"][i] == lineno
    return ev[i]


# ---------------------------------------------------------------------------
# Real lines, one of every event type in the oracle trace
# ---------------------------------------------------------------------------

# (line number, expected record) for event types inside the first 300k lines;
# comments quote the real line (page= hash elided).
HEAD_EXPECTED = [
    # init-1 [001] ..... 27.648481: mm_page_alloc: pfn=0x5088 order=1 migratetype=0
    #   gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO
    (1, MmPageAlloc("init", 1, 1, ".....", 27.648481, 1, pfn=0x5088, order=1, migratetype=0,
                    gfp_flags=parse_gfp("GFP_KERNEL_ACCOUNT|__GFP_ZERO"), failed=False)),
    # cut-218 [001] ..... 27.660852: mm_page_free: pfn=0x81b9 order=0
    (51, MmPageFree("cut", 218, 1, ".....", 27.660852, 51, pfn=0x81b9, order=0)),
    # cut-218 [001] ...2. 27.660922: mm_page_free_batched: pfn=0x81b9 order=0
    (61, MmPageFreeBatched("cut", 218, 1, "...2.", 27.660922, 61, pfn=0x81b9, order=0)),
    # agent-219 [001] d..3. 27.746016: mm_page_alloc_zone_locked: pfn=0xd400 order=9
    #   migratetype=1 percpu_refill=1
    (668, MmPageAllocZoneLocked("agent", 219, 1, "d..3.", 27.746016, 668, pfn=0xd400, order=9,
                                migratetype=1, percpu_refill=1)),
    # agent-219 [001] ..... 27.847437: tracing_mark_write: oracle_snap_begin seq=4 tag=start
    (776, TracingMarkWrite("agent", 219, 1, ".....", 27.847437, 776,
                           text="oracle_snap_begin seq=4 tag=start")),
    # kworker/0:0-9 [000] d..2. 27.848859: mm_page_pcpu_drain: pfn=0x8532 order=0 migratetype=1
    (777, MmPagePcpuDrain("kworker/0:0", 9, 0, "d..2.", 27.848859, 777, pfn=0x8532, order=0,
                          migratetype=1)),
    # init-1 [001] d..3. 28.180781: mm_page_alloc_extfrag: pfn=0xdc00 alloc_order=2
    #   fallback_order=10 pageblock_order=9 alloc_migratetype=2 fallback_migratetype=1
    #   fragmenting=0 change_ownership=1
    (3071, MmPageAllocExtfrag("init", 1, 1, "d..3.", 28.180781, 3071, pfn=0xdc00,
                              alloc_order=2, fallback_order=10, pageblock_order=9,
                              alloc_migratetype=2, fallback_migratetype=1, fragmenting=0,
                              change_ownership=1)),
]

# Event types that first occur after line 300k: the real lines, verbatim, with
# their line numbers (checked against the file by the slow test below).
LATE_LINES = {
    532118: "       filechurn-234     [001] .....    38.067561: mm_vmscan_wakeup_kswapd: "
            "nid=0 order=0 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_WRITE",
    532120: "         kswapd0-52      [001] .....    38.068343: mm_vmscan_kswapd_wake: "
            "nid=0 order=0",
    573681: "         kswapd0-52      [000] .....    38.386754: mm_vmscan_kswapd_sleep: nid=0",
    1604666: "         kswapd0-52      [001] .....    49.875400: mm_compaction_wakeup_kcompactd: "
             "nid=0 order=9 classzone_idx=Movable ",
    1605046: "      kcompactd0-39      [001] .....    49.879924: mm_compaction_begin: "
             "zone_start=0x1000 migrate_pfn=0x1000 free_pfn=0xffe00 zone_end=0x100000, "
             "mode=sync",
    1605056: "      kcompactd0-39      [001] .....    49.881471: "
             "mm_compaction_isolate_migratepages: range=(0x17a00 ~ 0x17aa0) nr_scanned=160 "
             "nr_taken=32",
    1605086: "      kcompactd0-39      [001] .....    49.882600: mm_compaction_isolate_freepages: "
             "range=(0x1fc00 ~ 0x1fe00) nr_scanned=512 nr_taken=0",
    1607677: "      kcompactd0-39      [001] .....    49.907212: mm_migrate_pages: "
             "nr_succeeded=32 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 "
             "nr_split=0 mode=MIGRATE_SYNC_LIGHT reason=compaction",
    1607678: "      kcompactd0-39      [001] .....    49.907347: mm_compaction_migratepages: "
             "nr_migrated=32 nr_failed=0",
    1608412: "      kcompactd0-39      [001] .N...    49.917122: mm_compaction_end: "
             "zone_start=0x1000 migrate_pfn=0x17c00 free_pfn=0x1b800 zone_end=0x100000, "
             "mode=sync status=success",
    1614790: "         anonhog-722     [000] .....    50.016664: mm_page_alloc: "
             "page=0000000000000000 pfn=0x0 order=9 migratetype=1 "
             "gfp_flags=GFP_TRANSHUGE_LIGHT|__GFP_NORETRY|__GFP_THISNODE",
    3544544: "         anonhog-722     [000] .....    83.865662: mm_vmscan_direct_reclaim_begin: "
             "order=0 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO",
    3544545: "           agent-224     [001] .....    83.868361: "
             "mm_compaction_try_to_compact_pages: order=2 gfp_mask=GFP_KERNEL|__GFP_COMP "
             "priority=2",
    3545865: "           agent-224     [001] .....    83.875546: mm_vmscan_direct_reclaim_end: "
             "nr_reclaimed=70",
}

LATE_ARGS = {
    532118: ("mm_vmscan_wakeup_kswapd", {"nid": 0, "order": 0, "gfp_flags": parse_gfp(
        "GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_WRITE")}),
    532120: ("mm_vmscan_kswapd_wake", {"nid": 0, "order": 0}),
    573681: ("mm_vmscan_kswapd_sleep", {"nid": 0}),
    1604666: ("mm_compaction_wakeup_kcompactd", {"nid": 0, "order": 9,
                                                 "classzone_idx": "Movable"}),
    1605046: ("mm_compaction_begin", {"zone_start": 0x1000, "migrate_pfn": 0x1000,
                                      "free_pfn": 0xffe00, "zone_end": 0x100000,
                                      "mode": "sync"}),
    1605056: ("mm_compaction_isolate_migratepages", {"range": "(0x17a00 ~ 0x17aa0)",
                                                     "nr_scanned": 160, "nr_taken": 32}),
    1605086: ("mm_compaction_isolate_freepages", {"range": "(0x1fc00 ~ 0x1fe00)",
                                                  "nr_scanned": 512, "nr_taken": 0}),
    1607677: ("mm_migrate_pages", {"nr_succeeded": 32, "nr_failed": 0, "nr_thp_succeeded": 0,
                                   "nr_thp_failed": 0, "nr_thp_split": 0, "nr_split": 0,
                                   "mode": "MIGRATE_SYNC_LIGHT", "reason": "compaction"}),
    1607678: ("mm_compaction_migratepages", {"nr_migrated": 32, "nr_failed": 0}),
    1608412: ("mm_compaction_end", {"zone_start": 0x1000, "migrate_pfn": 0x17c00,
                                    "free_pfn": 0x1b800, "zone_end": 0x100000, "mode": "sync",
                                    "status": "success"}),
    3544544: ("mm_vmscan_direct_reclaim_begin", {"order": 0, "gfp_flags": parse_gfp(
        "GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO")}),
    3544545: ("mm_compaction_try_to_compact_pages", {
        "order": 2, "gfp_mask": parse_gfp("GFP_KERNEL|__GFP_COMP"), "priority": 2}),
    3545865: ("mm_vmscan_direct_reclaim_end", {"nr_reclaimed": 70}),
}


@needs_oracle
@pytest.mark.parametrize("lineno,expected", HEAD_EXPECTED, ids=lambda x: str(x)[:30])
def test_real_line_record(head_lines, lineno, expected):
    assert parse_line(head_lines[lineno - 1], lineno, "trace.txt") == expected


@needs_oracle
@pytest.mark.parametrize("lineno,expected", HEAD_EXPECTED, ids=lambda x: str(x)[:30])
def test_real_line_batch_row(head_batch, lineno, expected):
    _, batch = head_batch
    r = _row(batch, lineno)
    assert KIND_NAMES[r["kind"]] == expected.name
    assert batch.comms[r["comm"]] == expected.comm
    assert (r["pid"], r["cpu"], r["ts"]) == (expected.pid, expected.cpu, expected.ts)
    if isinstance(expected, TracingMarkWrite):
        assert batch.records[r["aux"]] == expected
        return
    assert r["aux"] == -1
    assert r["pfn"] == expected.pfn
    if isinstance(expected, MmPageAllocExtfrag):
        got = (r["order"], r["fallback_order"], r["pageblock_order"], r["migratetype"],
               r["fallback_migratetype"], r["fragmenting"], r["change_ownership"])
        assert got == (expected.alloc_order, expected.fallback_order, expected.pageblock_order,
                       expected.alloc_migratetype, expected.fallback_migratetype,
                       expected.fragmenting, expected.change_ownership)
        return
    assert r["order"] == expected.order
    assert r["migratetype"] == getattr(expected, "migratetype", -1)
    assert r["gfp"] == getattr(expected, "gfp_flags", 0)
    assert r["percpu_refill"] == getattr(expected, "percpu_refill", -1)
    assert r["failed"] == getattr(expected, "failed", False)


@pytest.mark.parametrize("lineno", sorted(LATE_LINES))
def test_late_real_lines(lineno):
    rec = parse_line(LATE_LINES[lineno], lineno, "trace.txt")
    m = re.match(r" *(.*?)-(\d+) +\[(\d+)\] (\S+) +([\d.]+): ", LATE_LINES[lineno])
    assert (rec.comm, rec.pid, rec.cpu, rec.flags, rec.ts, rec.line) == (
        m.group(1), int(m.group(2)), int(m.group(3)), m.group(4), float(m.group(5)), lineno)
    if lineno == 1614790:       # the first failed allocation (page NULL, pfn printed 0)
        assert rec == MmPageAlloc("anonhog", 722, 0, ".....", 50.016664, lineno, pfn=0,
                                  order=9, migratetype=1, failed=True, gfp_flags=parse_gfp(
                                      "GFP_TRANSHUGE_LIGHT|__GFP_NORETRY|__GFP_THISNODE"))
        return
    name, args = LATE_ARGS[lineno]
    assert isinstance(rec, OtherEvent)
    assert rec.event == name
    assert rec.args == args
    assert rec.text == LATE_LINES[lineno].split(f" {name}: ", 1)[1]


def test_failed_alloc_in_batch(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(LATE_LINES[1614790] + "\n" + LATE_LINES[1614790].replace(
        "page=0000000000000000", "page=00000000deadbeef") + "\n")
    ev = read_trace(p).events
    assert ev["failed"].tolist() == [True, False]     # pfn 0 with a real page: not failed
    assert ev["pfn"].tolist() == [0, 0]
    assert ev["order"].tolist() == [9, 9]


# ---------------------------------------------------------------------------
# The two paths agree; counts agree with an independent count
# ---------------------------------------------------------------------------

def _record_row(rec):
    """The batch columns a record should produce (for comparison)."""
    g = lambda a, d=-1: getattr(rec, a, d)  # noqa: E731
    if isinstance(rec, MmPageAllocExtfrag):
        return (rec.kind, rec.pid, rec.cpu, rec.ts, rec.line, rec.pfn, rec.alloc_order,
                rec.alloc_migratetype, 0, -1, False, rec.fallback_order,
                rec.fallback_migratetype, rec.pageblock_order, rec.fragmenting,
                rec.change_ownership)
    return (rec.kind, rec.pid, rec.cpu, rec.ts, rec.line, g("pfn"), g("order"),
            g("migratetype"), g("gfp_flags", 0), g("percpu_refill"), g("failed", False),
            -1, -1, -1, -1, -1)


_COLS = ["kind", "pid", "cpu", "ts", "line", "pfn", "order", "migratetype", "gfp",
         "percpu_refill", "failed", "fallback_order", "fallback_migratetype",
         "pageblock_order", "fragmenting", "change_ownership"]


def _compare_paths(path, max_lines=None):
    """Both APIs over the same file, compared batch by batch (constant memory)."""
    rr = TraceReader(path, max_lines=max_lines)
    br = TraceReader(path, max_lines=max_lines, batch_size=50_000)
    recs = rr.records()
    for batch in br.batches():
        ev = batch.events
        chunk = list(itertools.islice(recs, len(ev)))
        assert len(chunk) == len(ev)
        assert ev[_COLS].tolist() == [_record_row(r) for r in chunk]
        assert [batch.comms[c] for c in ev["comm"]] == [r.comm for r in chunk]
        sel = np.flatnonzero(ev["aux"] >= 0)
        assert ev["aux"][sel].tolist() == list(range(len(sel)))
        assert batch.records == [chunk[i] for i in sel]
    assert next(recs, None) is None
    assert rr.event_counts == br.event_counts
    assert rr.lines == br.lines


@needs_oracle
def test_batches_equal_records_head():
    _compare_paths(TRACE, 100_000)


@needs_oracle
def test_event_counts_head(head_lines, head_batch):
    reader, batch = head_batch
    name = re.compile(r"\] \S+ +[\d.]+: (\w+):")
    want = Counter(name.search(ln).group(1) for ln in head_lines)
    assert reader.event_counts == want
    assert reader.lines == HEAD_LINES
    kinds = Counter(KIND_NAMES[k] for k in batch.events["kind"])
    assert kinds == want          # only kmem events and markers in the head
    # every free_batched line has an mm_page_free line for the same pfn before it
    ev = batch.events
    freed = set(ev["pfn"][ev["kind"] == MM_PAGE_FREE].tolist())
    assert set(ev["pfn"][ev["kind"] == MM_PAGE_FREE_BATCHED].tolist()) <= freed


@needs_oracle
def test_batch_sizes_and_slicing():
    sizes = [len(b) for b in TraceReader(TRACE, max_lines=20_000, batch_size=777).batches()]
    assert all(s == 777 for s in sizes[:-1]) and 0 < sizes[-1] <= 777
    assert sum(sizes) == 20_000
    small = list(TraceReader(TRACE, max_lines=20_000, batch_size=777).batches())
    whole = concat_batches(small)
    one = read_trace(TRACE, max_lines=20_000)
    assert np.array_equal(whole.events, one.events)
    assert whole.records == one.records
    marks = [r.text for r in whole.records if isinstance(r, TracingMarkWrite)]
    assert marks[0] == "oracle_snap_begin seq=4 tag=start"   # line 776


@needs_oracle
def test_early_stop_and_progress(capsys):
    r = TraceReader(TRACE, progress=True, batch_size=1000)
    it = r.batches()
    first = next(it)
    it.close()                      # reader thread must stop, not hang
    assert len(first) == 1000
    assert first.events["line"][0] == 1
    r = TraceReader(TRACE, progress=True, max_lines=70_000)
    assert sum(1 for _ in r.records()) == 70_000
    assert "trace.txt.xz" in capsys.readouterr().err


def test_skip_other_events(tmp_path):
    p = tmp_path / "late.txt"
    p.write_text("\n".join(LATE_LINES[k] for k in sorted(LATE_LINES)) + "\n")
    kept = read_trace(p, keep_other=False).events
    assert kept["kind"].tolist() == [MM_PAGE_ALLOC]
    r = TraceReader(p, keep_other=False)
    assert len(list(r.records())) == 1
    assert r.event_counts["mm_compaction_begin"] == 1
    assert len(read_trace(p).events) == len(LATE_LINES)


@needs_oracle
@pytest.mark.slow
def test_late_lines_are_in_the_file():
    want = dict(LATE_LINES)
    with open_trace(TRACE) as f:
        for i, ln in enumerate(f, 1):
            if i in want:
                assert ln.rstrip("\n") == want.pop(i)
                if not want:
                    break
    assert not want


@needs_oracle
@pytest.mark.slow
def test_whole_file_counts_match_manifest():
    manifest = json.loads((RUN_DIR / "manifest.json").read_text())
    r = TraceReader(TRACE)
    failed = 0
    kinds = np.zeros(9, np.int64)
    for b in r.batches():
        kinds += np.bincount(b.events["kind"], minlength=9)
        failed += int(b.events["failed"].sum())
    assert r.lines == manifest["trace"]["lines"]
    assert dict(r.event_counts) == manifest["trace"]["event_counts"]
    assert kinds[LOST_EVENTS] == len(manifest["trace"]["lost_event_lines"])
    # failed allocations, counted independently on the text
    null = 0
    with lzma.open(TRACE, "rb") as f:
        for ln in f:
            null += b"mm_page_alloc: page=0000000000000000 pfn=0x0 " in ln
    assert failed == null


@needs_oracle
@pytest.mark.slow
def test_whole_file_paths_agree():
    _compare_paths(TRACE)


# ---------------------------------------------------------------------------
# Compression, layouts, odd lines
# ---------------------------------------------------------------------------

SAMPLE = """\
# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
            init-1       [001] .....    27.648481: mm_page_alloc: page=00000000af3f5202 pfn=0x5088 order=1 migratetype=0 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO
             cut-218     [001] .....    27.660852: mm_page_free: page=000000004a2ad7d2 pfn=0x81b9 order=0

             cut-218     [001] ...2.    27.660922: mm_page_free_batched: page=000000004a2ad7d2 pfn=0x81b9 order=0
           agent-219     [001] d..3.    27.746016: mm_page_alloc_zone_locked: page=00000000b0301c36 pfn=0xd400 order=9 migratetype=1 percpu_refill=1
           agent-219     [001] .....    27.847437: tracing_mark_write: oracle_snap_begin seq=4 tag=start
     kworker/0:0-9       [000] d..2.    27.848859: mm_page_pcpu_drain: page=0000000028a6aabf pfn=0x8532 order=0 migratetype=1
CPU:1 [LOST 42 EVENTS]
            init-1       [001] d..3.    28.180781: mm_page_alloc_extfrag: page=00000000efb6140b pfn=0xdc00 alloc_order=2 fallback_order=10 pageblock_order=9 alloc_migratetype=2 fallback_migratetype=1 fragmenting=0 change_ownership=1
      kcompactd0-39      [001] .N...    49.917122: mm_compaction_end: zone_start=0x1000 migrate_pfn=0x17c00 free_pfn=0x1b800 zone_end=0x100000, mode=sync status=success
"""  # noqa: E501  (lines copied from the oracle trace, lines 1, 51, 61, 668, 776, 777, 3071, 1608412)


def _write(path: Path, text: str):
    data = text.encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif path.suffix == ".xz":
        path.write_bytes(lzma.compress(data))
    elif path.suffix == ".zst":
        import zstandard
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)
    return path


def _summary(path):
    """Comparable content of both paths (repr: lost-event lines have ts NaN)."""
    b = concat_batches(list(TraceReader(path).batches()))
    return repr(b.events.tolist()), repr(b.records), repr(list(TraceReader(path).records()))


@pytest.mark.parametrize("suffix", [".txt", ".gz", ".xz", ".zst"])
def test_compressions_read_the_same(tmp_path, suffix):
    plain = _write(tmp_path / "plain.txt", SAMPLE)
    other = _write(tmp_path / f"t{suffix}", SAMPLE)
    with open_trace(other) as f:
        assert f.read() == SAMPLE
    with open_trace(other, "rb") as f:
        assert f.read() == SAMPLE.encode()
    assert _summary(other) == _summary(plain)
    # detection is by content, not by name
    renamed = other.rename(tmp_path / "no-extension")
    assert _summary(renamed) == _summary(plain)


def test_sample_contents(tmp_path):
    p = _write(tmp_path / "s.txt", SAMPLE)
    r = TraceReader(p)
    b = read_trace(p)
    ev = b.events
    assert ev["kind"].tolist() == [MM_PAGE_ALLOC, MM_PAGE_FREE, MM_PAGE_FREE_BATCHED,
                                   MM_PAGE_ALLOC_ZONE_LOCKED, TRACING_MARK_WRITE,
                                   MM_PAGE_PCPU_DRAIN, LOST_EVENTS, MM_PAGE_ALLOC_EXTFRAG,
                                   OTHER_EVENT]
    assert ev["line"].tolist() == [6, 7, 9, 10, 11, 12, 13, 14, 15]   # physical lines
    assert b.records[0].text == "oracle_snap_begin seq=4 tag=start"
    assert b.records[1] == LostEvents("", -1, 1, "", b.records[1].ts, 13, count=42)
    assert b.records[2].event == "mm_compaction_end"
    recs = list(r.records())
    assert [x.line for x in recs] == ev["line"].tolist()
    assert isinstance(recs[-1], OtherEvent) and recs[-1].args["status"] == "success"


def _to_trace_cmd(line: str, flags: bool) -> str:
    """Re-shape a tracefs line the way ``trace-cmd report`` prints it (spec 5.7)."""
    m = re.match(r" *(.*?)-(\d+) +\[(\d+)\] (\S{5}) +([\d.]+): (\w+): (.*)", line)
    comm, pid, cpu, fl, ts, event, text = m.groups()
    if event == "tracing_mark_write":
        event, text = "print", "tracing_mark_write: " + text
    head = f"{comm:>16}-{int(pid):<5} [{cpu}] " + (f"{fl} " if flags else " ")
    return f"{head}{ts}: {event + ':':<20} {text}"


@pytest.mark.parametrize("flags", [False, True])
def test_trace_cmd_layout(tmp_path, flags):
    body = [ln for ln in SAMPLE.splitlines() if ln and not ln.startswith(("#", "CPU:"))]
    tc = ["cpus=2", "CPU 0 is empty"] + [_to_trace_cmd(ln, flags) for ln in body]
    assert tc[2].startswith("            init-1     [001] ")
    assert ": mm_page_alloc:       page=" in tc[2]
    assert ": print:               tracing_mark_write: oracle_snap_begin" in tc[6]
    p1 = _write(tmp_path / "tracefs.txt", "\n".join(body) + "\n")
    p2 = _write(tmp_path / "tracecmd.txt", "\n".join(tc) + "\n")
    a = [r for r in TraceReader(p1).records()]
    b = [r for r in TraceReader(p2).records()]
    assert len(a) == len(b) == len(body)
    for x, y in zip(a, b):
        x.line = y.line = 0
        if not flags:
            x.flags = ""
        assert x == y
    ea, eb = read_trace(p1).events, read_trace(p2).events
    cols = [c for c in _COLS if c != "line"]
    assert ea[cols].tolist() == eb[cols].tolist()


def test_spec_trace_cmd_example():
    # spec 5.7 shape of a trace-cmd report line
    ln = ("            bash-1234  [003]  5432.109876: mm_page_alloc:        page=0xffffea0000000000 "
          "pfn=0x1a2b3c order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO")
    rec = parse_line(ln, 1)
    assert rec == MmPageAlloc("bash", 1234, 3, "", 5432.109876, 1, pfn=0x1a2b3c, order=0,
                              migratetype=1,
                              gfp_flags=parse_gfp("GFP_HIGHUSER_MOVABLE|__GFP_ZERO"))


def test_header_variants():
    # record-tgid column, comm with '-' and spaces, old 4-char flags, decimal pfn
    rec = parse_line("   my-prog x-77   (     70) [002] d..1  12.000001: mm_page_free: "
                     "page=0 pfn=4096 order=3", 5)
    assert (rec.comm, rec.pid, rec.cpu, rec.flags, rec.pfn, rec.order) == (
        "my-prog x", 77, 2, "d..1", 4096, 3)
    # no irq-info flags column
    rec = parse_line("        sh-9       [000]     1.500000: mm_page_free: page=x pfn=0x10 "
                     "order=0")
    assert (rec.comm, rec.flags, rec.ts, rec.pfn) == ("sh", "", 1.5, 0x10)
    assert parse_line("# comment") is None and parse_line("   ") is None
    assert parse_line("cpus=4") is None
    assert parse_line("CPU:0 [LOST 7 EVENTS]").count == 7
    assert parse_line("CPU:3 [123 EVENTS DROPPED]").count == 123
    with pytest.raises(TraceFormatError, match="field 'pid': value out of range"):
        parse_line("  x-99999999999 [000] ..... 1.000000: mm_page_free: pfn=0x1 order=0")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

GOOD = ("            init-1       [001] .....    27.648481: mm_page_alloc: page=00000000af3f5202 "
        "pfn=0x5088 order=1 migratetype=0 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO")
BAD_LINES = [
    (GOOD.replace("order=1", "order=x"),
     "mm_page_alloc: field 'order': expected integer, got 'x'"),
    (GOOD.replace("pfn=0x5088", "pfn=0xZZ"),
     "mm_page_alloc: field 'pfn': expected hex pfn, got '0xZZ'"),
    (GOOD.replace(" migratetype=0", ""), "mm_page_alloc: field 'migratetype': missing"),
    (GOOD.replace("GFP_KERNEL_ACCOUNT", "GFP_BOGUS"), "mm_page_alloc: field 'gfp_flags'"),
    (GOOD.replace("order=1", "order=300"), "mm_page_alloc: field 'order': value 300 out of range"),
    (GOOD[:60], "garbled line"),
    ("             cut-218     [001] .....    27.660852: mm_page_free: page=1 pfn=0x81b9 junk",
     "mm_page_free: garbled text"),
]


@pytest.mark.parametrize("bad,msg", BAD_LINES)
@pytest.mark.parametrize("api", ["batches", "records"])
def test_malformed_line_raises(tmp_path, bad, msg, api):
    p = _write(tmp_path / "bad.txt", "\n".join([GOOD, GOOD, bad, GOOD]) + "\n")
    r = TraceReader(p)
    with pytest.raises(TraceFormatError) as ei:
        list(getattr(r, api)())
    assert str(ei.value).startswith(f"{p}:3: ")
    assert msg in str(ei.value)
    assert isinstance(ei.value, ValueError) and ei.value.lineno == 3


@pytest.mark.parametrize("api", ["batches", "records"])
def test_lenient_counts_and_skips(tmp_path, api):
    lines = [GOOD] + [b for b, _ in BAD_LINES] + [BAD_LINES[0][0], GOOD]
    p = _write(tmp_path / "bad.txt", "\n".join(lines) + "\n")
    r = TraceReader(p, lenient=True)
    out = list(getattr(r, api)())
    if api == "batches":
        assert [int(x) for b in out for x in b.events["line"]] == [1, len(lines)]
    else:
        assert [x.line for x in out] == [1, len(lines)]
    assert r.errors == Counter({
        "mm_page_alloc: field 'order'": 3, "mm_page_alloc: field 'pfn'": 1,
        "mm_page_alloc: field 'migratetype'": 1, "mm_page_alloc: field 'gfp_flags'": 1,
        "garbled line": 1, "mm_page_free: garbled text": 1})
    assert r.error_samples[0].startswith(f"{p}:2: mm_page_alloc: field 'order'")


def test_unknown_events_are_not_errors(tmp_path):
    p = _write(tmp_path / "u.txt", "          <idle>-0       [000] d.h2.   100.000000: "
                                   "irq_handler_entry: irq=11 name=virtio0\n")
    (rec,) = TraceReader(p).records()
    assert rec.event == "irq_handler_entry" and rec.args == {"irq": 11, "name": "virtio0"}
    ev = read_trace(p).events
    assert ev["kind"].tolist() == [OTHER_EVENT]


def test_kind_codes_match_engine_log():
    """The five kmem page events share their codes between this reader and the
    engine's event log; the engine's other tracepoints (codes 5..: the SPB
    series' and the kswapd / kcompactd / compaction ones) are its own and are
    rendered by tracefmt under their kernel names."""
    state = pytest.importorskip("spbsim.mm.state")
    from spbsim.trace.tracefmt import _KTHREAD_NAMES, _SPB_NAMES
    for code, name in enumerate(state.EV_NAMES[:5]):
        assert KIND_NAMES[code] == name
    rendered = {**_SPB_NAMES, **_KTHREAD_NAMES}
    for code, name in enumerate(state.EV_NAMES):
        if code >= 5:
            assert rendered[code] == name


def test_dtype_and_exports():
    assert EVENT_DTYPE.itemsize == 56
    for name in T.__all__:
        assert hasattr(T, name)


def test_old_import_paths_are_the_new_modules():
    """spbsim.workload.{trace,replay,whatif,...} and spbsim.observe.tracefmt
    moved to spbsim.trace; the old paths name the very same modules."""
    import importlib
    for old, new in [("spbsim.workload.trace", "spbsim.trace.ftrace"),
                     ("spbsim.workload.kpageflags", "spbsim.trace.kpageflags"),
                     ("spbsim.workload.placement", "spbsim.trace.placement"),
                     ("spbsim.workload.replay", "spbsim.trace.replay"),
                     ("spbsim.workload.whatif", "spbsim.trace.whatif"),
                     ("spbsim.observe.tracefmt", "spbsim.trace.tracefmt")]:
        assert importlib.import_module(old) is importlib.import_module(new)
