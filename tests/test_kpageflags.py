"""Tests of spbsim.trace.kpageflags against the oracle's kpageflags dumps.

The oracle run ``run1-mixed-s1`` is found via $SPBSIM_ORACLE or
<repo>/../shared/oracle; tests that need it are skipped when it is absent.
Zone spans come from its manifest.json, expected counts from the snapshot's
own /proc/buddyinfo.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spbsim.trace.kpageflags import (
    KPF_BUDDY, KPF_COMPOUND_HEAD, KPF_LRU, KPF_NAMES, KPF_NOPAGE, KPF_PGTABLE, KPF_RESERVED,
    KPF_SLAB, KPF_THP, buddy_runs, free_block_counts, free_blocks_from_kpageflags, kpf_mask,
    kpf_names, load_kpageflags,
)
from spbsim.trace.ftrace import MM_PAGE_PCPU_DRAIN, TraceReader, TracingMarkWrite

REPO = Path(__file__).resolve().parent.parent
RUN = "run1-mixed-s1"


from oracle import oracle_root as _oracle_root  # noqa: E402


def _run_dir():
    root = _oracle_root()
    for d in (root / RUN, root):
        if (d / "manifest.json").exists() and (d / "snapshots").is_dir():
            return d
    return None


RUN_DIR = _run_dir()
needs_oracle = pytest.mark.skipif(
    RUN_DIR is None, reason=f"no oracle run with manifest.json + snapshots/ under "
                            f"{_oracle_root()} (set SPBSIM_ORACLE)")


def _zones():
    m = json.loads((RUN_DIR / "manifest.json").read_text())
    return [(z["zone"], z["start_pfn"], z["start_pfn"] + z["spanned"])
            for z in m["machine"]["zones"]]


def _snapshot(tag):
    (d,) = [d for d in (RUN_DIR / "snapshots").iterdir() if d.name.endswith("-" + tag)]
    return d


def _buddyinfo(path):
    """/proc/buddyinfo -> {zone: [counts per order]}."""
    out = {}
    for line in path.read_text().splitlines():
        f = line.split()
        out[f[3]] = [int(x) for x in f[4:]]
    return out


def _blocks(flags, zones):
    return free_blocks_from_kpageflags(flags, max_order=10, boundaries=[z[1] for z in zones])


def _counts(flags, zones):
    pfn, order = _blocks(flags, zones)
    return {k: v.tolist() for k, v in free_block_counts(pfn, order, zones).items()}


# ---------------------------------------------------------------------------
# Real dumps
# ---------------------------------------------------------------------------

@needs_oracle
def test_end_snapshot_matches_buddyinfo():
    zones = _zones()
    snap = _snapshot("end")
    flags = load_kpageflags(snap / "kpageflags.bin.xz")
    assert flags.dtype == np.uint64
    assert len(flags) == max(z[2] for z in zones)          # pfn 0 .. max_pfn - 1
    assert _counts(flags, zones) == _buddyinfo(snap / "buddyinfo")


@needs_oracle
def test_start_snapshot_matches_buddyinfo_after_window_drains():
    """The 'start' snapshot is not atomic: buddyinfo is read first, kpageflags
    later, and in between a kworker drained PCP pages into the buddy lists
    (mm_page_pcpu_drain lines between the oracle_snap_begin/end seq=4 markers).
    Unmarking those drained pages gives buddyinfo exactly."""
    zones = _zones()
    snap = _snapshot("start")
    flags = load_kpageflags(snap / "kpageflags.bin.xz").copy()
    seq = int(snap.name.split("-")[0])
    reader = TraceReader(RUN_DIR / "trace.txt.xz", max_lines=20_000)
    begin = end = None
    drains = []
    for b in reader.batches():
        for rec, line in ((r, r.line) for r in b.records if isinstance(r, TracingMarkWrite)):
            if rec.text == f"oracle_snap_begin seq={seq} tag=start":
                begin = line
            elif rec.text == f"oracle_snap_end seq={seq} tag=start":
                end = line
        drains.append(b.events[b.events["kind"] == MM_PAGE_PCPU_DRAIN])
    assert begin is not None and end is not None
    drains = np.concatenate(drains)
    drains = drains[(drains["line"] > begin) & (drains["line"] < end)]
    assert len(drains) > 0
    for pfn, order in zip(drains["pfn"].tolist(), drains["order"].tolist()):
        flags[pfn:pfn + (1 << order)] &= ~np.uint64(1 << KPF_BUDDY)
    assert _counts(flags, zones) == _buddyinfo(snap / "buddyinfo")


@needs_oracle
def test_free_pages_only_buddy_bit():
    """Free pages carry KPF_BUDDY alone; the memory hole is KPF_NOPAGE."""
    zones = _zones()
    flags = load_kpageflags(_snapshot("end") / "kpageflags.bin.xz")
    buddy = kpf_mask(flags, KPF_BUDDY)
    assert np.all(flags[buddy] == np.uint64(1 << KPF_BUDDY))
    pfn, order = _blocks(flags, zones)
    assert int((1 << order.astype(np.int64)).sum()) == int(buddy.sum())
    nopage = kpf_mask(flags, KPF_NOPAGE)
    assert not np.any(nopage & buddy)
    # the hole between DMA32's present RAM and Normal (the recording's manifest: DMA32 present 4096-131071)
    dma32_start = dict((z[0], z[1]) for z in zones)["DMA32"]
    hole = np.flatnonzero(nopage)
    assert hole.min() > dma32_start and hole.max() < dict((z[0], z[1]) for z in zones)["Normal"]
    for bit in (KPF_LRU, KPF_SLAB, KPF_THP, KPF_RESERVED, KPF_COMPOUND_HEAD, KPF_PGTABLE):
        assert kpf_mask(flags, bit).any()          # the bits we expose occur in real data


# ---------------------------------------------------------------------------
# Synthetic cases
# ---------------------------------------------------------------------------

def _flags_from_pages(n, free):
    f = np.zeros(n, np.uint64)
    f[list(free)] = np.uint64(1 << KPF_BUDDY)
    return f


def test_greedy_split_small():
    f = _flags_from_pages(64, range(3, 17))
    pfn, order = free_blocks_from_kpageflags(f)
    assert list(zip(pfn.tolist(), order.tolist())) == [(3, 0), (4, 2), (8, 3), (16, 0)]


def test_max_order_and_boundaries():
    f = _flags_from_pages(8192, range(0, 4096 + 512))
    pfn, order = free_blocks_from_kpageflags(f, max_order=10)
    assert list(zip(pfn.tolist(), order.tolist())) == [(0, 10), (1024, 10), (2048, 10),
                                                       (3072, 10), (4096, 9)]
    pfn, order = free_blocks_from_kpageflags(f, max_order=10, boundaries=[1536])
    assert list(zip(pfn.tolist(), order.tolist())) == [(0, 10), (1024, 9), (1536, 9),
                                                       (2048, 10), (3072, 10), (4096, 9)]
    s, e = buddy_runs(f, boundaries=[1536, 5000])
    assert s.tolist() == [0, 1536] and e.tolist() == [1536, 4608]


def test_empty_and_counts():
    pfn, order = free_blocks_from_kpageflags(np.zeros(100, np.uint64))
    assert len(pfn) == len(order) == 0
    c = free_block_counts(np.array([1, 4, 8, 100]), np.array([0, 2, 3, 0], np.int8),
                          [("A", 0, 64), ("B", 64, 128)], nr_orders=4)
    assert c["A"].tolist() == [1, 0, 1, 1] and c["B"].tolist() == [1, 0, 0, 0]


def test_kpf_names():
    assert KPF_NAMES[KPF_BUDDY] == "BUDDY" and KPF_NAMES[KPF_RESERVED] == "RESERVED"
    assert kpf_names((1 << KPF_LRU) | (1 << KPF_THP) | (1 << 63)) == ["LRU", "THP", "bit63"]


def test_load_plain_and_xz(tmp_path):
    import lzma
    vals = np.array([0, 1 << KPF_BUDDY, 1 << KPF_NOPAGE, 2**63], dtype="<u8")
    (tmp_path / "k.bin").write_bytes(vals.tobytes())
    (tmp_path / "k.bin.xz").write_bytes(lzma.compress(vals.tobytes()))
    assert load_kpageflags(tmp_path / "k.bin").tolist() == vals.tolist()
    assert load_kpageflags(tmp_path / "k.bin.xz").tolist() == vals.tolist()
    (tmp_path / "odd.bin").write_bytes(b"1234567")
    with pytest.raises(ValueError, match="multiple of 8"):
        load_kpageflags(tmp_path / "odd.bin")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=3000), st.integers(0, 10))
def test_blocks_property(bits, max_order):
    """Blocks tile the buddy pages exactly, are aligned, and greedy-maximal."""
    f = _flags_from_pages(len(bits), [i for i, b in enumerate(bits) if b])
    pfn, order = free_blocks_from_kpageflags(f, max_order=max_order)
    size = 1 << order.astype(np.int64)
    cover = np.zeros(len(bits), int)
    for p, s in zip(pfn.tolist(), size.tolist()):
        assert p % s == 0
        cover[p:p + s] += 1
    assert cover.tolist() == [int(b) for b in bits]
    assert order.max(initial=0) <= max_order
    buddy = np.array(bits)
    for p, o in zip(pfn.tolist(), order.tolist()):
        # a larger block at p would have been possible only if it is misaligned,
        # over max_order or runs past the run of free pages
        if o < max_order and p % (2 << o) == 0:
            assert p + (2 << o) > len(bits) or not buddy[p:p + (2 << o)].all()
