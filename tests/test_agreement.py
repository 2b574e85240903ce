"""Tests of the decision-level agreement (spbsim.trace.peek, .agreement).

The peek must answer what the model's own rmqueue_buddy() does, without
changing the state; on tiny synthetic recordings (a start snapshot's
kpageflags and a handful of trace lines) the agreement must count an obvious
agreement, an obvious disagreement, the skips and the breakdown classes.  The
oracle run is measured wholly under ``@pytest.mark.slow``.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from spbsim.cli import main
from spbsim.mm.const import (ALLOC_HIGHATOMIC, ALLOC_NOFRAGMENT, ALLOC_NON_BLOCK, ALLOC_OOM,
                             KERNEL_VERSIONS, MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE,
                             MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, PG_head, PG_lru,
                             pageblock_nr_pages)
from spbsim.mm.gfp import GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_TRANSHUGE, parse_gfp
from spbsim.machine import Machine
from spbsim.trace import agreement_core as core
from spbsim.trace import peek
from spbsim.trace.agreement import (BREAKDOWN_KEYS, format_table, gfp_class, replay_agreement)
from spbsim.trace.kpageflags import KPF_BUDDY, KPF_LRU
from spbsim.trace.replay import PlacementReplay, oracle_machine

from oracle import oracle_root

MANIFEST = {"machine": {"ram_mb": 1024, "ram_below_4g_mb": 512, "vcpus": 2}}
N = 0x100000                    # first pfn of the Normal zone
Z_NORMAL = 2


# ---------------------------------------------------------------------------
# synthetic recordings
# ---------------------------------------------------------------------------

_HEAD = "{comm:>16}-{pid:<7} [{cpu:03d}] {fl} {ts:12.6f}: "
_LINES = {
    "zl": "mm_page_alloc_zone_locked: page=00000000deadbeef pfn={pfn:#x} order={order} "
          "migratetype={mt} percpu_refill={refill}",
    "alloc": "mm_page_alloc: page=00000000cafebabe pfn={pfn:#x} order={order} migratetype={mt} "
             "gfp_flags={gfp}",
    "extfrag": "mm_page_alloc_extfrag: page=00000000deadbeef pfn={pfn:#x} alloc_order={order} "
               "fallback_order={fo} pageblock_order=9 alloc_migratetype={mt} "
               "fallback_migratetype={fmt} fragmenting={frag} change_ownership={chown}",
    "drain": "mm_page_pcpu_drain: page=00000000deadbeef pfn={pfn:#x} order={order} "
             "migratetype={mt}",
    "mark": "tracing_mark_write: {text}",
}


def zl(pfn, order=0, mt=MIGRATE_MOVABLE, cpu=0):
    refill = int((order <= 3 or order == 9) and mt < 3)
    return ("zl", dict(pfn=pfn, order=order, mt=mt, refill=refill), cpu)


def alloc(pfn, order=0, gfp="GFP_HIGHUSER_MOVABLE", cpu=0):
    return ("alloc", dict(pfn=pfn, order=order, mt=(parse_gfp(gfp) >> 3) & 3, gfp=gfp), cpu)


def extfrag(pfn, order, fo, mt, fmt, chown=0, cpu=0):
    return ("extfrag", dict(pfn=pfn, order=order, fo=fo, mt=mt, fmt=fmt,
                            frag=int(fo < 9), chown=chown), cpu)


def drain(pfn, order=0, mt=MIGRATE_MOVABLE, cpu=0):
    return ("drain", dict(pfn=pfn, order=order, mt=mt), cpu)


def recording(root, free, events, lru=(), manifest=MANIFEST):
    """A recording in ``root``: at the start snapshot the blocks ``free``
    [(pfn, order)] are free and the ranges ``lru`` [(pfn, n)] are on LRU lists,
    everything else is allocated; then ``events`` after the start markers."""
    root = Path(root)
    n = oracle_machine(MANIFEST).mem.pg_flags.size
    flags = np.zeros(n, np.uint64)
    for p, o in free:
        flags[p:p + (1 << o)] |= np.uint64(1 << KPF_BUDDY)
    for p, k in lru:
        flags[p:p + k] |= np.uint64(1 << KPF_LRU)
    d = root / "snapshots" / "0001-start"
    d.mkdir(parents=True)
    flags.astype("<u8").tofile(d / "kpageflags.bin")
    (root / "snapshots" / "index.tsv").write_text(
        "seq\ttag\tmono_ns_first_file\tdir\tfiles\n1\tstart\t10000000000\t0001-start\tkpageflags\n")
    (root / "manifest.json").write_text(json.dumps(manifest))
    lines = ["# tracer: nop", "#"]
    ts = 10.0
    for kind, kw, cpu in [("mark", {"text": "oracle_snap_begin seq=1 tag=start"}, 1),
                          ("mark", {"text": "oracle_snap_end seq=1 tag=start"}, 1)] + list(events):
        ts += 0.001
        comm, pid = ("agent", 219) if kind == "mark" else ("work", 300 + cpu)
        fl = "....." if kind in ("mark", "alloc") else "d..3."
        lines.append(_HEAD.format(comm=comm, pid=pid, cpu=cpu, fl=fl, ts=ts)
                     + _LINES[kind].format(**kw))
    (root / "trace.txt").write_text("\n".join(lines) + "\n")
    return root


def agreement(root, **kw):
    return replay_agreement(root / "trace.txt", root / "snapshots", keep_rows=True, **kw)


def row(r, i=0):
    return dict(zip(core.ROW_COLUMNS, r["rows"][i].tolist()))


# ---------------------------------------------------------------------------
# agreement on synthetic recordings
# ---------------------------------------------------------------------------

def test_plain_order0_from_a_populated_list_agrees(tmp_path):
    B = N + 0x800
    X = N + 0x4000
    root = recording(tmp_path, [(B, 3), (X, 3)], [
        zl(B), alloc(B),                                        # a single buddy allocation
        zl(B + 1, cpu=1), zl(B + 2, cpu=1),                     # no mm_page_alloc of
        zl(B + 4, 2, cpu=1), alloc(B + 4, 2, cpu=1),            # order 0 ends these two
        zl(X, 1, MIGRATE_MOVABLE), zl(X + 2, 1), zl(X + 4, 1), alloc(X, 1)])   # a refill
    r = agreement(root)
    assert r["events"] == 7 and r["counted"] == 7 and r["skipped"] == {}
    assert r["overall"] == {"events": 7, "block": 7, "list": 7, "order": 7, "kind": 7, "all": 7}
    first = row(r)
    assert first["real_order"] == 3 and first["peek_order"] == 3 and first["peek_pfn"] == B
    assert first["group"] == 1 and first["gfp"] == GFP_HIGHUSER_MOVABLE
    cls = r["classes"]
    assert set(cls) == set(BREAKDOWN_KEYS)
    assert cls["pcp"]["single"]["events"] == 2
    assert cls["pcp"]["refill"]["events"] == 3
    assert cls["pcp"]["unmatched"]["events"] == 2
    assert cls["gfp"]["GFP_HIGHUSER_MOVABLE"]["events"] == 5
    assert cls["gfp"]["unknown"]["events"] == 2
    assert cls["order"]["0"]["events"] == 3 and cls["order"]["1"]["all"] == 3
    assert cls["zone"]["Normal"]["all"] == 7 and cls["migratetype"]["Movable"]["events"] == 7
    assert cls["decision"]["smallest"]["events"] == 7
    assert r["decisions"] == {"smallest": {"smallest": 7}}
    out = format_table(r)
    assert "overall" in out and "pcp=refill" in out and "100.0%" in out


def test_steal_from_the_largest_fallback_buddy_disagrees_with_claim_steal(tmp_path):
    """A movable order-0 request steals from an UNMOVABLE order-7 buddy (too
    little free to claim its block), as __rmqueue_fallback (v6.1) does;
    __rmqueue_steal (claim-steal) takes the smallest fallback buddy, another
    block's single page: other block and order, same list and kind."""
    A = N + 0x1000
    V = N + 0x2000
    root = recording(tmp_path, [(A, 0), (A + 128, 7), (V, 1)], [
        zl(A, 0, MIGRATE_UNMOVABLE), alloc(A, 0, "GFP_KERNEL"),     # A, V: UNMOVABLE blocks
        zl(V, 0, MIGRATE_UNMOVABLE, cpu=1), alloc(V, 0, "GFP_KERNEL", cpu=1),
        extfrag(A + 128, 0, 7, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE), alloc(A + 128)])
    r = agreement(root)
    assert r["events"] == 3 and r["counted"] == 1 and r["skipped"] == {"list_type": 2}
    assert r["overall"] == {"events": 1, "block": 0, "list": 1, "order": 0, "kind": 1, "all": 0}
    x = row(r, 2)
    assert x["event"] == core.EVENT_EXTFRAG and x["real_kind"] == peek.PK_STEAL
    assert x["real_list"] == MIGRATE_UNMOVABLE and x["real_order"] == 7
    assert x["peek_kind"] == peek.PK_STEAL and x["peek_pfn"] == V + 1 and x["peek_order"] == 0
    assert r["decisions"] == {"steal": {"steal": 1}}
    assert r["classes"]["decision"]["steal"]["all"] == 0
    assert r["examples"]["decision=steal"] == [x["line"]]
    r61 = agreement(root, version="6.1")
    assert r61["rule"] == "rmqueue_fallback" and r61["overall"]["all"] == 1
    assert row(r61, 2)["peek_pfn"] == A + 128


def test_phantom_buddy_is_skipped_and_healed(tmp_path):
    """The kernel split an order-3 buddy for an order-0 request while the
    state's list held an order-0 page: that page was not free in the kernel.
    The event is skipped and the page taken off the lists, so a later split
    agrees; without healing the phantom page is peeked again whenever the
    lists above it are empty."""
    X = N + 0x1000
    Y = N + 0x2000
    root = recording(tmp_path, [(X + 1, 0), (Y, 3)], [
        zl(Y), zl(Y + 1), zl(Y + 2), alloc(Y)])
    r = agreement(root)
    assert r["skipped"] == {"phantom": 1} and r["stats"]["phantom_pages"] == 1
    assert r["overall"]["events"] == 2 and r["overall"]["all"] == 2
    r0 = agreement(root, heal=False)
    assert r0["skipped"] == {} and r0["overall"]["events"] == 3 and r0["overall"]["all"] == 1
    assert row(r0, 0)["peek_pfn"] == row(r0, 2)["peek_pfn"] == X + 1


def test_claim_pairs_zone_locked_with_extfrag_and_counts_movable_pages(tmp_path):
    """An UNMOVABLE request claims a MOVABLE block: the zone_locked line and
    the extfrag line after it are one claim.  Whether the model claims too
    depends on the block's movable pages (LRU at the start)."""
    C = N + 0x3000
    events = [zl(C, 0, MIGRATE_UNMOVABLE), extfrag(C, 0, 3, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, 1),
              alloc(C, 0, "GFP_KERNEL")]
    root = recording(tmp_path, [(C, 3)], events, lru=[(C + 8, pageblock_nr_pages - 8)])
    for lru, kind in ((False, peek.PK_CLAIM), (True, peek.PK_STEAL)):
        r = agreement(root, lru=lru)
        x = row(r)
        assert x["real_kind"] == peek.PK_CLAIM and x["real_list"] == MIGRATE_MOVABLE
        assert x["real_fallback_order"] == 3 and x["real_order"] == 3
        assert x["peek_kind"] == kind and x["peek_list"] == MIGRATE_MOVABLE
        assert x["peek_pfn"] == C and x["peek_order"] == 3
        assert r["overall"]["all"] == 1 and r["overall"]["kind"] == int(kind == peek.PK_CLAIM)
        assert r["movable_pages"] == ("lru" if lru else "model")
    # the v6.1 rule decides the same here (the largest fallback is the only one)
    assert row(agreement(root, version="6.1"))["peek_kind"] == peek.PK_STEAL


MANIFEST_61 = dict(MANIFEST, kernel={"release": "6.1.0-57-amd64"})


def test_v61_fallback_is_one_decision_at_the_zone_locked_line_after_its_extfrag(tmp_path):
    """On a v6.1 recording the extfrag line comes first (__rmqueue_fallback),
    then the zone_locked line of __rmqueue's retry: one claim, recorded at
    the page the retry took, with the fallback's list and order."""
    C = N + 0x3000
    events = [extfrag(C + 8, 0, 3, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, 1),
              zl(C + 1, 0, MIGRATE_UNMOVABLE), alloc(C + 1, 0, "GFP_KERNEL")]
    root = recording(tmp_path, [(C + 1, 0), (C + 2, 1), (C + 4, 2), (C + 8, 3)], events,
                     manifest=MANIFEST_61)
    r = agreement(root, version="6.1", lru=False)
    assert r["events"] == 1 and r["counted"] == 1 and r["skipped"] == {}
    x = row(r)
    assert x["real_kind"] == peek.PK_CLAIM and x["real_list"] == MIGRATE_MOVABLE
    assert x["real_fallback_order"] == 3 and x["real_pfn"] == C + 1 and x["real_order"] == 0
    assert x["peek_kind"] == peek.PK_CLAIM and x["peek_pfn"] == C + 1 and x["peek_order"] == 0
    assert r["overall"]["all"] == 1 and r["decisions"] == {"claim": {"claim": 1}}
    assert r["placement"]["counters"]["extfrag_before_zone_locked"] == 1


def test_v61_steal_keeps_the_stolen_buddys_order_and_block(tmp_path):
    """A v6.1 steal: extfrag names the UNMOVABLE order-7 buddy, the retry's
    zone_locked line takes its first page: one steal of an order-7 buddy."""
    A = N + 0x1000
    root = recording(tmp_path, [(A, 0), (A + 128, 7)], [
        zl(A, 0, MIGRATE_UNMOVABLE), alloc(A, 0, "GFP_KERNEL"),
        extfrag(A + 128, 0, 7, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE), zl(A + 128), alloc(A + 128)],
        manifest=MANIFEST_61)
    r = agreement(root, version="6.1")
    assert r["events"] == 2 and r["counted"] == 1 and r["skipped"] == {"list_type": 1}
    x = row(r, 1)
    assert x["real_kind"] == peek.PK_STEAL and x["real_order"] == 7
    assert x["real_list"] == MIGRATE_UNMOVABLE and x["block_mt"] == MIGRATE_UNMOVABLE
    assert x["peek_kind"] == peek.PK_STEAL and x["peek_pfn"] == A + 128
    assert r["overall"]["all"] == 1 and r["decisions"] == {"steal": {"steal": 1}}


def test_skips_name_the_state_mismatch(tmp_path):
    B = N + 0x800
    H = N + 0x1000
    root = recording(tmp_path, [(B, 3), (H + 1, 0)], [
        zl(B + 16), alloc(B + 16),                 # allocated in the replay state
        zl(B + 1), alloc(B + 1),                   # inside a free buddy, not its head
        zl(B, 0, MIGRATE_UNMOVABLE), alloc(B, 0, "GFP_KERNEL"),   # a MOVABLE block's page
        drain(H + 3, 0, MIGRATE_HIGHATOMIC),       # H is a HIGHATOMIC block
        zl(H + 1, 0, MIGRATE_HIGHATOMIC)])         # no mm_page_alloc names its request
    r = agreement(root)
    assert r["events"] == 4 and r["counted"] == 0
    assert r["skipped"] == {"not_free": 1, "inner": 1, "list_type": 1, "request_unknown": 1}
    assert r["overall"]["events"] == 0
    assert "skipped" in format_table(r)


def test_gfp_classes():
    assert gfp_class(-1, 0) == "unknown"
    assert gfp_class(GFP_TRANSHUGE, 9) == "THP"
    assert gfp_class(GFP_HIGHUSER_MOVABLE, 0) == "GFP_HIGHUSER_MOVABLE"
    assert gfp_class(GFP_ATOMIC, 3) == "atomic/nowait"
    assert gfp_class(GFP_KERNEL, 0) == "GFP_KERNEL"
    assert gfp_class(parse_gfp("GFP_KERNEL|__GFP_RECLAIMABLE"), 0) == "reclaimable"
    assert gfp_class(parse_gfp("__GFP_IO|__GFP_FS|__GFP_NORETRY|__GFP_RECLAIMABLE"), 2) \
        == "reclaimable"
    assert gfp_class(parse_gfp("GFP_NOFS|__GFP_MOVABLE"), 0) == "movable other"
    assert gfp_class(parse_gfp("GFP_NOIO"), 0) == "other"


def test_cli_agreement_mode(tmp_path, capsys):
    B = N + 0x800
    root = recording(tmp_path, [(B, 3)], [zl(B), alloc(B)])
    out = tmp_path / "a.json"
    main(["replay", str(root), "--mode", "agreement", "--json", str(out)])
    text = capsys.readouterr().out
    assert "decision-level agreement" in text and "overall" in text
    j = json.loads(out.read_text())
    assert j["overall"]["all"] == 1 and "rows" not in j and set(j["classes"]) == set(BREAKDOWN_KEYS)
    assert j["version"] == "6.12"
    # a recording of a 6.1 kernel is peeked with the 6.1 variant unless told otherwise
    r61 = recording(tmp_path / "r61", [(B, 3)], [zl(B), alloc(B)], manifest=MANIFEST_61)
    main(["replay", str(r61), "--mode", "agreement", "--json", str(out)])
    assert json.loads(out.read_text())["rule"] == "rmqueue_fallback"
    main(["replay", str(r61), "--mode", "agreement", "--kernel-version", "6.12",
          "--json", str(out)])
    assert json.loads(out.read_text())["rule"] == "claim-steal"
    capsys.readouterr()
    (r61 / "manifest.json").write_text('{"kernel": {"release": ')
    with pytest.raises(SystemExit) as e:
        main(["replay", str(r61), "--mode", "agreement"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "manifest.json: unreadable JSON" in err and "Traceback" not in err
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "trace.txt").write_text((root / "trace.txt").read_text())
    with pytest.raises(SystemExit) as e:
        main(["replay", str(tmp_path / "bare"), "--mode", "agreement"])
    assert e.value.code == 2
    assert "needs the snapshots/ directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# the peek is the model's decision, read-only
# ---------------------------------------------------------------------------

#: per state: the pageblock types that hold free pages (the others' requests fall back)
FREE_TYPES = ((MIGRATE_MOVABLE,), (MIGRATE_UNMOVABLE, MIGRATE_HIGHATOMIC),
              (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE, MIGRATE_HIGHATOMIC),
              (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE))


def _random_state(seed):
    """A 1 GiB replay machine with random pageblock types (a few HIGHATOMIC),
    random free buddies in blocks of the types FREE_TYPES[seed] and random
    PG_lru heads."""
    rng = np.random.default_rng(seed)
    rep = PlacementReplay(oracle_machine(memory="1G", cpus=2))
    m = rep.mem
    types = rng.choice([MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE,
                        MIGRATE_HIGHATOMIC], m.pb_mt.size, p=[0.2, 0.6, 0.17, 0.03])
    rep.reset_allocated(types.astype(np.uint8))
    pbs = np.flatnonzero((m.pb_zone >= 0) & np.isin(types, FREE_TYPES[seed]))
    free = []
    for pb in rng.choice(pbs, min(60, len(pbs)), replace=False).tolist():
        base = pb * pageblock_nr_pages
        if seed >= 2 and rng.random() < 0.1:         # whole free blocks in two states
            free.append((base, 9))
            continue
        for _ in range(int(rng.integers(1, 12))):
            o = int(rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 6]))
            p = base + (int(rng.integers(0, pageblock_nr_pages)) & ~((1 << o) - 1))
            free.append((p, o))
    # keep blocks that do not overlap one another
    taken = np.zeros(m.pg_flags.size, bool)
    keep = []
    for p, o in free:
        if not taken[p:p + (1 << o)].any():
            taken[p:p + (1 << o)] = True
            keep.append((p, o))
    rep.insert_free([p for p, _ in keep], [o for _, o in keep])
    heads = np.flatnonzero(m.pg_flags & PG_head)
    lru = heads[rng.random(len(heads)) < 0.5]
    m.pg_flags[lru] |= PG_lru
    return rep


def _state_digest(m):
    return [getattr(m, f).tobytes() for f in peek.SAVED_FIELDS]


@pytest.mark.parametrize("model_version", ["recent", "6.1" if "6.1" in KERNEL_VERSIONS
                                            else "6.12"])
def test_peek_is_the_models_rmqueue_buddy_and_changes_nothing(model_version):
    """On random states, every peek names the block the model's own
    rmqueue_buddy() takes (run on the state, then restored) and the same kind
    of decision; the state is byte for byte what it was."""
    rule = peek.RULE_CLAIM_STEAL if model_version == "recent" else peek.RULE_FALLBACK
    rng = np.random.default_rng(7)
    kinds = set()
    for seed in range(len(FREE_TYPES)):
        rep = _random_state(seed)
        m = rep.mem
        m.cfg[:] = Machine(memory="1G", cpus=2, version=model_version, pcp=False).mem.cfg
        before = _state_digest(m)
        saved = peek.saved_arrays(m)
        for _ in range(300):
            z = int(rng.choice([1, 2]))
            order = int(rng.choice([0, 0, 1, 2, 3, 4, 5, 9, 10]))
            mt = int(rng.integers(0, 3))
            flags = int(rng.choice([0, 0, ALLOC_NOFRAGMENT, ALLOC_HIGHATOMIC | ALLOC_NON_BLOCK,
                                    ALLOC_OOM]))
            d = peek.peek_rmqueue(rep.machine, z, order, mt, flags, rule)
            kind, page = peek.rmqueue_applied(m, z, order, mt, flags, saved)
            assert d.pfn == page, (z, order, mt, flags, d)
            assert peek.KIND_NAMES[kind] == d.kind, (z, order, mt, flags, d)
            kinds.add(d.kind)
        assert _state_digest(m) == before
    assert kinds >= {"smallest", "claim", "claim_whole", "steal", "highatomic", "none"}


# ---------------------------------------------------------------------------
# the oracle recording
# ---------------------------------------------------------------------------

def _run_dir():
    d = oracle_root() / "run1-mixed-s1"
    return d if (d / "trace.txt.xz").exists() and (d / "snapshots").is_dir() else None


needs_oracle = pytest.mark.skipif(_run_dir() is None,
                                  reason="no oracle run1-mixed-s1 (set SPBSIM_ORACLE)")


@needs_oracle
def test_oracle_first_150k_lines():
    """The start of the recording (t = 28-33 s): every event paired with its
    request, the decisions all smallest-first or whole-block claims."""
    d = _run_dir()
    r = replay_agreement(d / "trace.txt.xz", d / "snapshots", max_lines=150_000)
    assert r["counted"] > 20_000 and set(r["skipped"]) <= {"start_window", "not_free", "inner"}
    assert r["overall"]["list"] == r["overall"]["order"] == r["overall"]["events"]
    assert r["overall"]["all"] >= 0.998 * r["overall"]["events"]
    assert r["stats"]["pending_overflow"] == r["stats"]["rows_overflow"] == 0


#: measured on the whole run1-mixed-s1 recording (docs/fidelity.md)
AGREE_EVENTS, AGREE_COUNTED, AGREE_ALL = 935_131, 934_808, 932_057


@pytest.mark.slow
@needs_oracle
def test_oracle_whole_trace_agreement():
    d = _run_dir()
    r = replay_agreement(d / "trace.txt.xz", d / "snapshots")
    assert r["events"] == AGREE_EVENTS and r["counted"] == AGREE_COUNTED
    ov = r["overall"]
    assert abs(ov["all"] - AGREE_ALL) <= 0.001 * AGREE_COUNTED
    assert ov["list"] == ov["order"] == ov["kind"] == ov["events"]
    assert r["decisions"] == {"smallest": {"smallest": 934_770}, "claim": {"claim": 11},
                              "claim_whole": {"claim_whole": 27}}
    assert r["skipped"]["phantom"] == 34
