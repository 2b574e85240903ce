"""Tests of spbsim.trace.tracefmt: kmem events rendered as tracefs text.

Real lines come from the oracle run ``run1-mixed-s1`` ($SPBSIM_ORACLE or
<repo>/../shared/oracle; skipped when absent), first 300,000 lines only unless
marked slow.
"""
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spbsim.mm.gfp import GFP_NAMES, format_gfp, parse_gfp
from spbsim.trace.tracefmt import (
    NULL_PAGE, fake_page_hash, format_batch, format_ev_log, format_event, format_header,
    format_line,
)
from spbsim.trace.ftrace import (
    MM_PAGE_ALLOC, MM_PAGE_ALLOC_EXTFRAG, MM_PAGE_ALLOC_ZONE_LOCKED, MM_PAGE_FREE,
    MM_PAGE_PCPU_DRAIN, MmPageAlloc, MmPageAllocExtfrag, MmPageAllocZoneLocked, MmPageFree,
    MmPageFreeBatched, MmPagePcpuDrain, OtherEvent, TraceReader, TracingMarkWrite,
    concat_batches, open_trace, parse_line, read_trace,
)

REPO = Path(__file__).resolve().parent.parent
RUN = "run1-mixed-s1"
HEAD_LINES = 300_000
PAGE = re.compile(r"page=(\S+)")


from oracle import oracle_root as _oracle_root  # noqa: E402


def _trace():
    root = _oracle_root()
    for d in (root / RUN, root):
        if (d / "trace.txt.xz").exists():
            return d / "trace.txt.xz"
    return None


TRACE = _trace()
needs_oracle = pytest.mark.skipif(
    TRACE is None, reason=f"no oracle trace.txt.xz under {_oracle_root()} "
                          "(set SPBSIM_ORACLE to the oracle directory)")


@pytest.fixture(scope="module")
def head_lines():
    with open_trace(TRACE) as f:
        return [ln.rstrip("\n") for ln in itertools.islice(f, HEAD_LINES)]


def _mask_page(line: str) -> str:
    return PAGE.sub("page=<hash>", line, count=1)


# ---------------------------------------------------------------------------
# Real lines
# ---------------------------------------------------------------------------

@needs_oracle
def test_real_lines_byte_identical(head_lines):
    """Every head line re-rendered from its record equals the real line
    (given the real page= string), and differs only in page= otherwise."""
    seen = set()
    for i, line in enumerate(head_lines, 1):
        rec = parse_line(line, i)
        seen.add(type(rec).__name__)
        m = PAGE.search(line)
        assert format_event(rec, page=m.group(1) if m else None) == line, i
        if i % 10 == 0 or not isinstance(rec, (MmPageAlloc, MmPageFree, MmPageFreeBatched)):
            out = format_event(rec)
            assert _mask_page(out) == _mask_page(line), i
    # every event type of the head (spec 5.5 kmem events and the marker) was covered
    assert seen == {"MmPageAlloc", "MmPageFree", "MmPageFreeBatched", "MmPageAllocZoneLocked",
                    "MmPagePcpuDrain", "MmPageAllocExtfrag", "TracingMarkWrite"}


@needs_oracle
def test_real_lines_round_trip(head_lines):
    """parse -> format (fake page=) -> parse gives the same record."""
    for i, line in enumerate(head_lines[:50_000], 1):
        rec = parse_line(line, i)
        assert parse_line(format_event(rec), i) == rec


@needs_oracle
def test_header_columns_from_other_values(head_lines):
    """Passing another comm/pid/cpu/flags/ts changes only the header columns."""
    line = head_lines[667]     # line 668: agent-219 [001] d..3. 27.746016 zone_locked
    rec = parse_line(line, 668)
    assert format_event(rec, page=PAGE.search(line).group(1)) == line
    out = format_event(rec, comm="kworker/u8:2", pid=1234567, cpu=1, flags="d..3.",
                       ts=27.746016, page=PAGE.search(line).group(1))
    assert out == line.replace("           agent-219    ", "    kworker/u8:2-1234567")


def test_failed_alloc_line():
    # oracle line 1614790, verbatim
    line = ("         anonhog-722     [000] .....    50.016664: mm_page_alloc: "
            "page=0000000000000000 pfn=0x0 order=9 migratetype=1 "
            "gfp_flags=GFP_TRANSHUGE_LIGHT|__GFP_NORETRY|__GFP_THISNODE")
    rec = parse_line(line, 1614790)
    assert rec.failed
    assert format_event(rec) == line             # NULL page needs no page= override
    rec.pfn = 12345                               # the pfn of a failed request is not printed
    assert format_event(rec) == line


def test_other_event_and_marker_lines():
    # oracle lines 1604666 (trailing blank of classzone_idx=%-8s) and 776
    lines = ["         kswapd0-52      [001] .....    49.875400: mm_compaction_wakeup_kcompactd: "
             "nid=0 order=9 classzone_idx=Movable ",
             "           agent-219     [001] .....    27.847437: tracing_mark_write: "
             "oracle_snap_begin seq=4 tag=start"]
    for ln in lines:
        assert format_event(parse_line(ln)) == ln


# ---------------------------------------------------------------------------
# Header shape and the fake hash
# ---------------------------------------------------------------------------

def test_header_shape():
    assert format_header("init", 1, 1, ".....", 27.648481) == \
        "            init-1       [001] .....    27.648481"
    # no irq-info column: "[%03d] " then " %5lu.%06lu"
    assert format_header("sh", 9, 0, "", 1.5) == "              sh-9       [000]      1.500000"
    # long values are not cut; microseconds are rounded like ns2usecs
    assert format_header("a" * 16, 12345678, 123, "d..1.", 123456.0000004) == \
        "aaaaaaaaaaaaaaaa-12345678 [123] d..1. 123456.000000"
    assert format_header("x", 1, 2, ".....", 0.0000005).endswith("     0.000001")
    assert format_line("x", 1, 2, ".....", 3.0, "mm_page_free", "t").endswith(
        "3.000000: mm_page_free: t")


def test_fake_page_hash():
    hashes = [fake_page_hash(p) for p in range(4096)]
    assert all(re.fullmatch(r"00000000[0-9a-f]{8}", h) for h in hashes)
    assert len(set(hashes)) == len(hashes)
    assert NULL_PAGE not in hashes
    assert fake_page_hash(0x5088) == fake_page_hash(0x5088)


# ---------------------------------------------------------------------------
# Property: format -> parse is the identity on records
# ---------------------------------------------------------------------------

_gfp = st.lists(st.sampled_from(sorted(v for v in GFP_NAMES.values())), max_size=5).map(
    lambda xs: sum(set(xs)) if xs else 0).map(lambda g: parse_gfp(format_gfp(g)))
_head = dict(comm=st.from_regex(r"[a-z<>./:0-9_]{1,15}", fullmatch=True),
             pid=st.integers(0, 4_194_304), cpu=st.integers(0, 511),
             flags=st.sampled_from([".....", "d..3.", ".N...", "dNh2."]),
             ts=st.integers(0, 10**11).map(lambda us: us / 1e6), line=st.just(7))
_pfn = st.integers(1, 1 << 40)
_order = st.integers(0, 10)
_mt = st.integers(0, 4)

_records = st.one_of(
    st.builds(MmPageAlloc, **_head, pfn=_pfn, order=_order, migratetype=_mt,
              gfp_flags=_gfp, failed=st.just(False)),
    st.builds(MmPageFree, **_head, pfn=_pfn, order=_order),
    st.builds(MmPageFreeBatched, **_head, pfn=_pfn, order=st.just(0)),
    st.builds(MmPageAllocZoneLocked, **_head, pfn=_pfn, order=_order, migratetype=_mt,
              percpu_refill=st.integers(0, 1)),
    st.builds(MmPagePcpuDrain, **_head, pfn=_pfn, order=_order, migratetype=_mt),
    st.builds(MmPageAllocExtfrag, **_head, pfn=_pfn, alloc_order=_order,
              fallback_order=_order, pageblock_order=st.just(9), alloc_migratetype=_mt,
              fallback_migratetype=_mt, fragmenting=st.integers(0, 1),
              change_ownership=st.integers(0, 1)),
    st.builds(TracingMarkWrite, **_head, text=st.from_regex(r"[a-z]+( [a-z]+=[0-9]+)*",
                                                            fullmatch=True)),
)


@settings(max_examples=300, deadline=None)
@given(_records)
def test_format_parse_identity(rec):
    line = format_event(rec)
    assert parse_line(line, 7) == rec


@settings(max_examples=20, deadline=None)
@given(st.lists(_records, min_size=1, max_size=40))
def test_format_batch_parse_identity(tmp_path_factory, recs):
    """Records -> lines -> batch reader -> format_batch -> the same lines."""
    p = tmp_path_factory.mktemp("fmt") / "t.txt"
    for r in recs:
        r.flags = "....."
    lines = [format_event(r) for r in recs]
    p.write_text("\n".join(lines) + "\n")
    batch = read_trace(p)
    assert [_mask_page(x) for x in format_batch(batch)] == [_mask_page(x) for x in lines]


# ---------------------------------------------------------------------------
# Batches and the engine's event log
# ---------------------------------------------------------------------------

@needs_oracle
def test_format_batch_real(head_lines):
    n = 20_000
    batch = concat_batches(list(TraceReader(TRACE, max_lines=n).batches()))
    flags = re.compile(r"(\[\d{3}\]) \S{5} ")
    got = [flags.sub(r"\1 ..... ", _mask_page(x)) for x in format_batch(batch)]
    want = [flags.sub(r"\1 ..... ", _mask_page(x)) for x in head_lines[:n]]
    assert got == want


def test_format_ev_log():
    """Rows shaped like spbsim.mm.state's log: kind, ts_ns, cpu, pfn, order, a, b, c, d."""
    gfp = parse_gfp("GFP_HIGHUSER_MOVABLE|__GFP_COMP")
    ev = np.array([
        [MM_PAGE_ALLOC, 27_648_481_000, 1, 0x5088, 1, gfp, 1, 0, 0],
        [MM_PAGE_ALLOC, 27_648_482_000, 1, 0, 9, gfp, 1, 1, 0],          # failed
        [MM_PAGE_FREE, 28_000_000_000, 0, 0x81b9, 0, 0, 0, 0, 0],
        [MM_PAGE_ALLOC_ZONE_LOCKED, 28_000_001_499, 0, 0xd400, 9, 1, 1, 0, 0],
        [MM_PAGE_PCPU_DRAIN, 28_000_001_500, 0, 0x8532, 0, 1, 0, 0, 0],
        [MM_PAGE_ALLOC_EXTFRAG, 28_000_002_000, 1, 0xdc00, 2, 10, 2, 1, 1],
        [MM_PAGE_FREE, 0, 0, 0, 0, 0, 0, 0, 0],                           # beyond n
    ], dtype=np.int64)
    lines = list(format_ev_log(ev, 6, comm="sim", pid=3, pageblock_order=9))
    assert len(lines) == 6
    recs = [parse_line(x, i) for i, x in enumerate(lines, 1)]
    assert recs[0] == MmPageAlloc("sim", 3, 1, ".....", 27.648481, 1, pfn=0x5088, order=1,
                                  migratetype=1, gfp_flags=gfp)
    assert recs[1].failed and recs[1].order == 9
    assert (recs[2].pfn, recs[2].order, recs[2].ts) == (0x81b9, 0, 28.0)
    assert (recs[3].migratetype, recs[3].percpu_refill, recs[3].ts) == (1, 1, 28.000001)
    assert (recs[4].pfn, recs[4].migratetype, recs[4].ts) == (0x8532, 1, 28.000002)
    assert recs[5] == MmPageAllocExtfrag("sim", 3, 1, ".....", 28.000002, 6, pfn=0xdc00,
                                         alloc_order=2, fallback_order=10, pageblock_order=9,
                                         alloc_migratetype=2, fallback_migratetype=1,
                                         fragmenting=0, change_ownership=1)


def test_other_event_needs_text():
    rec = OtherEvent("x", 1, 0, ".....", 1.0, 1, event="mm_vmscan_kswapd_sleep",
                     text="nid=0", args={"nid": 0})
    assert format_event(rec).endswith(": mm_vmscan_kswapd_sleep: nid=0")


@needs_oracle
@pytest.mark.slow
def test_whole_file_byte_identical():
    """Every line of the oracle trace re-renders byte for byte (real page= passed)."""
    with open_trace(TRACE) as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = PAGE.search(line)
            assert format_event(parse_line(line, i), page=m.group(1) if m else None) == line, i
