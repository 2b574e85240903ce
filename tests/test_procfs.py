"""Tests of spbsim.observe.procfs against hand-computed cases and real kernel output.

The oracle (real 6.12 snapshots) is found via $SPBSIM_ORACLE or <repo>/../shared/oracle;
tests that need it are skipped when it is absent.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from spbsim.observe.procfs import (
    ProcFormatError,
    extfrag_for_order,
    fill_contig_page_info,
    fragmentation_index,
    fragmentation_index_table,
    parse_buddyinfo,
    parse_index_file,
    parse_meminfo,
    parse_pagetypeinfo,
    parse_vmstat,
    parse_zoneinfo,
    read_snapshot,
    render_buddyinfo,
    render_extfrag_index,
    render_pagetypeinfo,
    render_unusable_index,
    render_vmstat,
    render_zoneinfo,
    unusable_free_index,
    unusable_index_table,
)

NR_PAGE_ORDERS = 11

# ---------------------------------------------------------------------------
# Oracle discovery
# ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


from oracle import oracle_root as _oracle_root  # noqa: E402


ORACLE = _oracle_root()
SNAPSHOTS = sorted(p for pattern in ("*/snapshots/*", "snapshots/*") for p in ORACLE.glob(pattern)
                   if p.is_dir() and (p / "buddyinfo").exists())
SKIP_REASON = (f"no oracle snapshots under {ORACLE} (set SPBSIM_ORACLE to a directory "
               "holding <run>/snapshots/<snap>/ or snapshots/<snap>/)")


def _snapshot_params():
    if not SNAPSHOTS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=SKIP_REASON))]
    return [pytest.param(p, id=f"{p.parent.parent.name}/{p.name}") for p in SNAPSHOTS]


def _read(snap: Path, name: str):
    path = snap / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path.read_text(encoding="ascii")


def _manifest(snap: Path):
    path = snap.parent.parent / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ---------------------------------------------------------------------------
# Byte-identical round trips on every oracle snapshot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("snap", _snapshot_params())
def test_buddyinfo_roundtrip(snap):
    text = _read(snap, "buddyinfo")
    zones, nr_free = parse_buddyinfo(text, source=str(snap / "buddyinfo"))
    assert nr_free.shape == (len(zones), NR_PAGE_ORDERS)
    assert render_buddyinfo(zones, nr_free) == text


@pytest.mark.parametrize("snap", _snapshot_params())
def test_pagetypeinfo_roundtrip(snap):
    text = _read(snap, "pagetypeinfo")
    p = parse_pagetypeinfo(text, source=str(snap / "pagetypeinfo"))
    kern = _manifest(snap).get("kernel", {})
    if "migratetypes_in_pagetypeinfo" in kern:
        assert p["mt_names"] == kern["migratetypes_in_pagetypeinfo"]
    if "pageblock_order" in kern:
        assert p["pageblock_order"] == kern["pageblock_order"]
    assert p["free_count"].shape == (len(p["zone_names"]), len(p["mt_names"]), NR_PAGE_ORDERS)
    out = render_pagetypeinfo(p["zone_names"], p["free_count"], p["block_count"],
                              p["mt_names"], p["pageblock_order"], node=p["node"],
                              mixed_count=p["mixed_count"])
    assert out == text


@pytest.mark.parametrize("snap", _snapshot_params())
def test_vmstat_roundtrip(snap):
    text = _read(snap, "vmstat")
    counters = parse_vmstat(text)
    assert "nr_free_pages" in counters
    assert render_vmstat(counters) == text


@pytest.mark.parametrize("snap", _snapshot_params())
def test_meminfo_parse(snap):
    info = parse_meminfo(_read(snap, "meminfo"))
    assert info["MemTotal"] > info["MemFree"] > 0


@pytest.mark.parametrize("snap", _snapshot_params())
def test_zoneinfo_roundtrip_and_manifest(snap):
    text = _read(snap, "zoneinfo")
    zi = parse_zoneinfo(text, source=str(snap / "zoneinfo"))
    assert render_zoneinfo(zi) == text
    bzones, _ = parse_buddyinfo(_read(snap, "buddyinfo"))
    assert [z for z, d in zi.items() if d["populated"]] == bzones
    for mz in _manifest(snap).get("machine", {}).get("zones", []):
        z = zi[mz["zone"]]
        for key in ("spanned", "present", "managed", "start_pfn"):
            assert z[key] == mz[key], key
        assert z["protection"] == mz["lowmem_reserve"]
        for key in ("min", "low", "high"):  # zoneinfo's marks include watermark_boost
            assert z[key] - z["boost"] == mz[key], key
        assert [p["cpu"] for p in z["pagesets"]] == [p["cpu"] for p in mz["pcp"]]
        assert [p["batch"] for p in z["pagesets"]] == [p["batch"] for p in mz["pcp"]]


def test_zoneinfo_pcp_matches_manifest_somewhere():
    """The manifest's pcp count/high (dynamic) equal those of one of the snapshots."""
    if not SNAPSHOTS:
        pytest.skip(SKIP_REASON)
    runs = {}
    for snap in SNAPSHOTS:
        if (snap / "zoneinfo").exists():
            runs.setdefault(snap.parent.parent, []).append(snap)
    for run, snaps in runs.items():
        mzones = _manifest(snaps[0]).get("machine", {}).get("zones")
        if not mzones:
            continue
        want = {mz["zone"]: mz["pcp"] for mz in mzones}
        found = []
        for snap in snaps:
            zi = parse_zoneinfo((snap / "zoneinfo").read_text())
            got = {name: [{k: p[k] for k in ("cpu", "count", "high", "batch")}
                          for p in zi[name]["pagesets"]] for name in want}
            if got == want:
                found.append(snap.name)
        assert found, f"{run.name}: no snapshot has the manifest's pagesets"


# ---------------------------------------------------------------------------
# unusable_index / extfrag_index against the kernel's own files
# ---------------------------------------------------------------------------

def _quiescent(data) -> bool:
    """True if every view of the free memory in a snapshot agrees.

    A snapshot is not atomic: its files are read one after another while the
    workload runs.  Take the buddy state as unchanged across the reads when
    buddyinfo, the per-order sums of pagetypeinfo, zoneinfo's "pages free" of each
    zone and vmstat's nr_free_pages all describe the same free memory.  (Checking
    one zone alone is not enough: in run1 snapshot 0022 DMA32 agrees on all
    three counts, yet its blocks had merged differently when unusable_index was read.)
    """
    zones, nr_free = data["buddyinfo"]
    pti, zi, vm = data.get("pagetypeinfo"), data.get("zoneinfo"), data.get("vmstat")
    if pti is None or zi is None or vm is None or pti["zone_names"] != zones:
        return False
    if not np.array_equal(pti["free_count"].sum(axis=1), nr_free):
        return False
    pages = (nr_free.astype(np.int64) << np.arange(nr_free.shape[1])).sum(axis=1)
    if any(zi[z]["free"] != int(p) for z, p in zip(zones, pages)):
        return False
    return vm.get("nr_free_pages") == int(pages.sum())


def test_index_files_match_kernel():
    """Rendered indices == the kernel's files wherever the buddy state was the same.

    Reports how many snapshots / zone rows match byte for byte; asserts exact
    equality for every quiescent snapshot (see ``_quiescent``).
    """
    if not SNAPSHOTS:
        pytest.skip(SKIP_REASON)
    stats = {"snapshots": 0, "quiescent": 0, "unusable_exact": 0, "extfrag_exact": 0,
             "zone_rows": 0, "unusable_rows": 0, "extfrag_rows": 0}
    for snap in SNAPSHOTS:
        if not (snap / "unusable_index").exists():
            continue
        data = read_snapshot(snap)
        zones, nr_free = data["buddyinfo"]
        quiet = _quiescent(data)
        stats["snapshots"] += 1
        stats["quiescent"] += quiet
        stats["zone_rows"] += len(zones)
        for fname, render, table in (
                ("unusable_index", render_unusable_index, unusable_index_table),
                ("extfrag_index", render_extfrag_index, fragmentation_index_table)):
            kind = fname.split("_")[0]
            text = (snap / fname).read_text()
            kzones, kindex = data[fname]
            assert kzones == zones, f"{snap.name}/{fname}: zones differ from buddyinfo"
            same = render(zones, nr_free) == text
            stats[f"{kind}_exact"] += same
            stats[f"{kind}_rows"] += int((table(nr_free) == kindex).all(axis=1).sum())
            if quiet:
                assert same, f"{snap.name}/{fname}: {table(nr_free)} != {kindex}"
    print("\nindex files vs indices computed from buddyinfo:", stats)
    if not stats["quiescent"]:
        pytest.skip(f"no quiescent snapshot among {stats['snapshots']}: {stats}")


# ---------------------------------------------------------------------------
# Hand-computed cases (spec 3.9)
# ---------------------------------------------------------------------------

def _row(**orders):
    row = [0] * NR_PAGE_ORDERS
    for k, v in orders.items():
        row[int(k[1:])] = v
    return row


def test_one_max_order_block():
    row = _row(o10=1)
    assert fill_contig_page_info(row, 3) == (1024, 1, 128)
    for order in range(NR_PAGE_ORDERS):
        assert unusable_free_index(row, order) == 0
        assert fragmentation_index(row, order) == -1000
        assert extfrag_for_order(row, order) == 0
    assert render_unusable_index(["Normal"], [row]) == "Node 0, zone   Normal " + "0.000 " * 11 + "\n"
    assert render_extfrag_index(["Normal"], [row]) == "Node 0, zone   Normal " + "-1.000 " * 11 + "\n"


def test_empty_zone():
    row = [0] * NR_PAGE_ORDERS
    for order in range(NR_PAGE_ORDERS):
        assert unusable_free_index(row, order) == 1000
        assert fragmentation_index(row, order) == 0
        assert extfrag_for_order(row, order) == 0
    assert render_unusable_index(["DMA"], [row], node=1) == "Node 1, zone      DMA " + "1.000 " * 11 + "\n"
    assert render_extfrag_index(["DMA"], [row]) == "Node 0, zone      DMA " + " 0.000 " * 11 + "\n"


def test_mixed_small_blocks():
    # 4 order-0 + 2 order-1 + 1 order-2 = 12 pages in 7 blocks
    row = _row(o0=4, o1=2, o2=1)
    assert fill_contig_page_info(row, 1) == (12, 7, 4)
    assert unusable_free_index(row, 0) == 0
    assert unusable_free_index(row, 1) == 333          # (12 - 4*2) * 1000 / 12
    assert unusable_free_index(row, 2) == 666          # (12 - 1*4) * 1000 / 12
    assert unusable_free_index(row, 3) == 1000
    assert extfrag_for_order(row, 1) == 33
    assert fragmentation_index(row, 2) == -1000
    assert fragmentation_index(row, 3) == 643          # 1000 - (1000 + 12000/8) / 7
    assert fragmentation_index(row, 4) == 750          # 1000 - (1000 + 750) / 7
    assert fragmentation_index(row, 10) == 856         # 1000 - (1000 + 11) / 7
    assert render_unusable_index(["Normal"], [row]) == (
        "Node 0, zone   Normal 0.000 0.333 0.666 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 \n")
    assert render_extfrag_index(["Normal"], [row]) == (
        "Node 0, zone   Normal -1.000 -1.000 -1.000  0.643  0.750  0.804  0.831  0.844  "
        "0.851  0.854  0.856 \n")


def test_negative_fragmentation_index_prints_like_c():
    # A single free order-0 page: the kernel formula goes negative for order >= 1,
    # and "%2d.%03d" of (index / 1000, index % 1000) with C division prints " 0.-500".
    row = _row(o0=1)
    assert [fragmentation_index(row, o) for o in range(NR_PAGE_ORDERS)] == [
        -1000, -500, -250, -125, -62, -31, -15, -7, -3, -1, 0]
    text = render_extfrag_index(["DMA32"], [row])
    assert text == ("Node 0, zone    DMA32 -1.000  0.-500  0.-250  0.-125  0.-62  0.-31  "
                    "0.-15  0.-07  0.-03  0.-01  0.000 \n")
    zones, table = parse_index_file(text)
    assert zones == ["DMA32"] and table.tolist() == [[fragmentation_index(row, o)
                                                      for o in range(NR_PAGE_ORDERS)]]


def test_fragmentation_index_order_out_of_range():
    assert fragmentation_index(_row(o0=3), NR_PAGE_ORDERS) == 0   # WARN_ON_ONCE -> 0


# ---------------------------------------------------------------------------
# Properties of the index formulas
# ---------------------------------------------------------------------------

nr_free_rows = st.lists(st.integers(0, 5000), min_size=NR_PAGE_ORDERS, max_size=NR_PAGE_ORDERS)
sparse_rows = st.lists(st.sampled_from([0, 0, 0, 1, 2, 3, 100, 40000]),
                       min_size=NR_PAGE_ORDERS, max_size=NR_PAGE_ORDERS)
any_rows = st.one_of(nr_free_rows, sparse_rows)


def _reference_unusable(row, order):
    """Share of free pages in blocks smaller than ``order``, from the definition."""
    total = sum(b << o for o, b in enumerate(row))
    small = sum(b << o for o, b in enumerate(row) if o < order)
    return 1000 if total == 0 else small * 1000 // total


@settings(max_examples=200, deadline=None)
@given(any_rows)
def test_unusable_index_properties(row):
    vals = [unusable_free_index(row, o) for o in range(NR_PAGE_ORDERS)]
    assert all(0 <= v <= 1000 for v in vals)
    assert vals == sorted(vals)                              # non-decreasing in order
    assert vals == [_reference_unusable(row, o) for o in range(NR_PAGE_ORDERS)]
    if any(row):
        assert vals[0] == 0
        # extfrag_for_order is the same ratio x100 (floor of floor)
        assert [extfrag_for_order(row, o) for o in range(NR_PAGE_ORDERS)] == [v // 10 for v in vals]


@settings(max_examples=200, deadline=None)
@given(any_rows)
def test_fragmentation_index_properties(row):
    for o in range(NR_PAGE_ORDERS):
        v = fragmentation_index(row, o)
        suitable = any(row[o:])
        assert (v == -1000) == suitable
        if not any(row):
            assert v == 0
        elif not suitable:
            assert -1000 < v <= 1000


@settings(max_examples=100, deadline=None)
@given(st.lists(any_rows, min_size=1, max_size=4))
def test_index_render_parse_roundtrip(rows):
    names = ["DMA", "DMA32", "Normal", "Movable"][:len(rows)]
    for render, table in ((render_unusable_index, unusable_index_table),
                          (render_extfrag_index, fragmentation_index_table)):
        text = render(names, rows, node=2)
        zones, parsed = parse_index_file(text)
        assert zones == names
        assert parsed.tolist() == table(rows).tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 10**7), min_size=NR_PAGE_ORDERS,
                         max_size=NR_PAGE_ORDERS), min_size=1, max_size=4))
def test_buddyinfo_render_parse_roundtrip(rows):
    names = ["DMA", "DMA32", "Normal", "Movable"][:len(rows)]
    text = render_buddyinfo(names, np.array(rows))
    zones, nr_free = parse_buddyinfo(text)
    assert zones == names and nr_free.tolist() == rows
    assert render_buddyinfo(zones, nr_free) == text


# ---------------------------------------------------------------------------
# Renderer details
# ---------------------------------------------------------------------------

def test_buddyinfo_format():
    nr_free = np.zeros((1, NR_PAGE_ORDERS), dtype=np.int64)
    nr_free[0, 0] = 123
    nr_free[0, 10] = 1234567
    assert render_buddyinfo(["Normal"], nr_free) == (
        "Node 0, zone   Normal    123 " + "     0 " * 9 + "1234567 \n")


def test_pagetypeinfo_cap_and_mixed():
    mts = ["Unmovable", "Movable"]
    free = np.zeros((1, 2, 2), dtype=np.int64)
    free[0, 0, 0] = 99999
    free[0, 1, 0] = 250000
    blocks = np.array([[3, 5]])
    text = render_pagetypeinfo(["Normal"], free, blocks, mts, pageblock_order=9,
                               mixed_count=np.array([[1, 0]]))
    assert text == (
        "Page block order: 9\n"
        "Pages per block:  512\n"
        "\n"
        "Free pages count per migrate type at order       0      1 \n"
        "Node    0, zone   Normal, type    Unmovable  99999      0 \n"
        "Node    0, zone   Normal, type      Movable >100000      0 \n"
        "\n"
        "Number of blocks type     Unmovable      Movable \n"
        "Node 0, zone   Normal            3            5 \n"
        "\n"
        "Number of mixed blocks    Unmovable      Movable \n"
        "Node 0, zone   Normal            1            0 \n")
    p = parse_pagetypeinfo(text)
    assert p["free_count"].tolist() == [[[99999, 0], [100000, 0]]]
    assert p["mixed_count"].tolist() == [[1, 0]]
    assert render_pagetypeinfo(p["zone_names"], p["free_count"], p["block_count"],
                               p["mt_names"], mixed_count=p["mixed_count"]) == text


def test_vmstat_render():
    assert render_vmstat({"nr_free_pages": 5, "compact_stall": 0}) == (
        "nr_free_pages 5\ncompact_stall 0\n")
    assert render_vmstat({"x": -1}) == "x 18446744073709551615\n"   # %lu


def test_zoneinfo_subset_render():
    """What a simulator prints: a subset of lines, each formatted as the kernel does."""
    zones = {
        "Normal": {"free": 13252, "boost": 0, "min": 11514, "low": 14392, "high": 17270,
                   "spanned": 262144, "present": 262144, "managed": 244787,
                   "protection": [0, 0, 0, 0, 0],
                   "stats": {"nr_free_pages": 13252},
                   "pagesets": [{"cpu": 0, "count": 4526, "high": 7196, "batch": 63}],
                   "start_pfn": 1048576},
        "Movable": {"free": 0, "min": 32, "protection": [0, 0]},
    }
    assert render_zoneinfo(zones) == (
        "Node 0, zone   Normal"
        "\n  pages free     13252"
        "\n        boost    0"
        "\n        min      11514"
        "\n        low      14392"
        "\n        high     17270"
        "\n        spanned  262144"
        "\n        present  262144"
        "\n        managed  244787"
        "\n        protection: (0, 0, 0, 0, 0)"
        "\n      nr_free_pages 13252"
        "\n  pagesets"
        "\n    cpu: 0"
        "\n              count: 4526"
        "\n              high:  7196"
        "\n              batch: 63"
        "\n  node_unreclaimable:  0"
        "\n  start_pfn:           1048576\n"
        "Node 0, zone  Movable"
        "\n  pages free     0"
        "\n        min      32"
        "\n        protection: (0, 0)\n")
    parsed = parse_zoneinfo(render_zoneinfo(zones))
    assert parsed["Normal"]["managed"] == 244787 and parsed["Normal"]["populated"]
    assert not parsed["Movable"]["populated"]


# ---------------------------------------------------------------------------
# Malformed input
# ---------------------------------------------------------------------------

BUDDY = ("Node 0, zone      DMA      0      0      0      0      0      0      1      1      0      1      3 \n"
         "Node 0, zone    DMA32     32     11      6      6      1      3      2      0      2      0     56 \n")


def _raises(fn, text, lineno, fragment, source="<string>"):
    with pytest.raises(ProcFormatError) as ei:
        fn(text, source=source) if source != "<string>" else fn(text)
    err = ei.value
    assert isinstance(err, ValueError)
    assert err.lineno == lineno and err.source == source
    assert f"{source}:{lineno}:" in str(err)
    assert fragment in str(err)
    return err


def test_buddyinfo_malformed():
    lines = BUDDY.splitlines(keepends=True)
    truncated = lines[0] + lines[1][:40] + "\n"
    _raises(parse_buddyinfo, truncated, 2, "11 free block counts", source="/proc/buddyinfo")
    _raises(parse_buddyinfo, BUDDY.replace(" 56 ", " 5x "), 2, "'5x'")
    _raises(parse_buddyinfo, BUDDY[:-1], 2, "truncated")
    _raises(parse_buddyinfo, "garbage\n", 1, "Node N, zone NAME")
    _raises(parse_buddyinfo, BUDDY + BUDDY.replace("Node 0", "Node 1"), 3, "pass node=")
    zones, nr = parse_buddyinfo(BUDDY + BUDDY.replace("Node 0", "Node 1"), node=1)
    assert zones == ["DMA", "DMA32"] and nr.shape == (2, 11)


def test_index_file_malformed():
    good = render_extfrag_index(["DMA"], [_row(o0=1)])
    assert parse_index_file(good)[1][0, 1] == -500
    _raises(parse_index_file, good.replace("0.-500", "0.5"), 1, "'%d.%03d'")
    _raises(parse_index_file, good.replace("-1.000", "-1,000"), 1, "'-1,000'")
    _raises(parse_index_file, good + "Node 0, zone   Normal 0.000 \n", 2, "11 index values")


def test_vmstat_malformed():
    _raises(parse_vmstat, "nr_free_pages 5\nnr_zone_x abc\n", 2, "name value")
    _raises(parse_vmstat, "nr_free_pages 5\nnr_free_pages 6\n", 2, "repeated")
    _raises(parse_vmstat, "nr_free_pages\n", 1, "name value")


PTI = render_pagetypeinfo(["DMA"], np.zeros((1, 2, 11), dtype=np.int64), np.array([[1, 7]]),
                          ["Unmovable", "Movable"])


def test_pagetypeinfo_malformed():
    lines = PTI.splitlines(keepends=True)
    assert parse_pagetypeinfo(PTI)["block_count"].tolist() == [[1, 7]]
    _raises(parse_pagetypeinfo, PTI.replace("Pages per block:  512", "Pages per block:  500"),
            2, "1 << 9")
    _raises(parse_pagetypeinfo, "".join(lines[:4] + [lines[4][:50] + "\n"] + lines[5:]), 5,
            "11 free counts")
    _raises(parse_pagetypeinfo, "".join(lines[:5] + lines[6:]), 6, "['Unmovable', 'Movable']")
    _raises(parse_pagetypeinfo, PTI.replace("      7 \n", "      x \n"), 9, "'x'")
    _raises(parse_pagetypeinfo, "".join(lines[:-1]), 9, "block counts for zones")


def test_zoneinfo_malformed():
    zones = {"Normal": {"free": 1, "min": 2, "low": 3, "high": 4, "protection": [0, 0],
                        "stats": {"nr_free_pages": 1},
                        "pagesets": [{"cpu": 0, "count": 1, "high": 2, "batch": 3,
                                      "stat_threshold": 4}],
                        "start_pfn": 4096}}
    text = render_zoneinfo(zones)
    assert render_zoneinfo(parse_zoneinfo(text)) == text
    lines = text.splitlines(keepends=True)
    # truncated inside pagesets
    _raises(parse_zoneinfo, "".join(lines[:10]), 10, "complete last zone")
    _raises(parse_zoneinfo, text.replace("low      3", "low      x"), 4, "watermark line")
    _raises(parse_zoneinfo, text.replace("high:  2", "batch: 2"), 11, "'high: N'")
    _raises(parse_zoneinfo, "  pages free     1\n", 1, "'Node N, zone NAME'")
    no_start = "".join(lines[:-1])
    assert len(lines) == 15
    _raises(parse_zoneinfo, no_start + text, 15, "rest of the previous zone")
    _raises(parse_zoneinfo, text + text.replace("Node 0", "Node 1"), 16, "pass node=")
    assert parse_zoneinfo(text + text.replace("Node 0", "Node 1"), node=1)["Normal"]["node"] == 1


def test_pagetypeinfo_two_nodes():
    two = PTI + PTI.replace("Node    0", "Node    1").replace("Node 0", "Node 1")
    _raises(parse_pagetypeinfo, two, 10, "pass node=")
    p = parse_pagetypeinfo(two, node=1)
    assert p["node"] == 1 and p["block_count"].tolist() == [[1, 7]]
    assert render_pagetypeinfo(p["zone_names"], p["free_count"], p["block_count"],
                               p["mt_names"], node=1) == two[len(PTI):]


_ZONEINFO_618 = """Node 0, zone      DMA
  pages free     3840
        boost    0
        min      16
        low      20
        high     24
        promo    28
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 3019, 14539, 14539, 14539)
      nr_free_pages 3840
  pagesets
    cpu: 0
              count:    0
              high:     0
              batch:    1
              high_min: 10
              high_max: 240
  vm stats threshold: 4
    cpu: 1
              count:    7
              high:     0
              batch:    1
              high_min: 10
              high_max: 240
  vm stats threshold: 4
  node_unreclaimable:  0
  start_pfn:           1
"""


def test_zoneinfo_pagesets_with_high_min_max():
    """Newer kernels (6.18) print high_min/high_max per cpu, aligned wider."""
    zi = parse_zoneinfo(_ZONEINFO_618, "zoneinfo")
    assert zi["DMA"]["pagesets"][1] == {"cpu": 1, "count": 7, "high": 0, "batch": 1,
                                        "high_min": 10, "high_max": 240, "stat_threshold": 4}
    assert render_zoneinfo(zi) == _ZONEINFO_618
    with pytest.raises(ProcFormatError, match=r"zoneinfo:20: expected 'high_max: N'"):
        parse_zoneinfo(_ZONEINFO_618.replace("high_max: 240", "high_min: 240", 1), "zoneinfo")
