"""``spbsim validate``: a recording's request stream through the simulated
allocator, measured against the kernel's own snapshots.

Reads the machine (zones, CPUs, kernel version, vm sysctls, reserved pages)
from the recording itself, refuses a recording whose trace and snapshots
disagree, runs the what-if replay (spbsim.trace.whatif) and compares, per
zone and snapshot, free pages by order, free huge-page-sized blocks,
pageblocks per migratetype, per-cpu pages, failed allocations and OOM kills
with the fidelity targets.  docs/validate.md describes recording and output.
"""
from __future__ import annotations

import bisect
import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spbsim.errors import SpbsimError
from spbsim.mm.const import MAX_PAGE_ORDER, NR_PAGE_ORDERS, ZONE_NAMES, pageblock_order
from spbsim.trace.manifest import kernel_release, policy_for_kernel, read_manifest

__all__ = ["Recording", "RecordedMachine", "open_recording", "recorded_machine",
           "policy_for_kernel", "zone_metrics", "compare", "validate", "format_summary",
           "format_table", "write_results", "TARGETS", "TRACE_NAMES", "METRIC_COLUMNS",
           "end_row", "failures_near_kernel", "FAILURE_NEAR_S"]

#: trace file names a recording may hold, in order of preference
TRACE_NAMES = ("trace.txt.xz", "trace.txt.zst", "trace.txt.gz", "trace.txt")
KPAGEFLAGS_NAMES = ("kpageflags.bin.xz", "kpageflags.bin.zst", "kpageflags.bin.gz",
                    "kpageflags.bin", "kpageflags")

#: the fidelity targets: free pages in blocks of order >= 9 within ge9_rel of
#: the kernel's or ge9_abs blocks (whichever is larger); page-weighted
#: buddyinfo L1 distance <= l1_max of the kernel's free pages; pageblocks of
#: each migratetype within pb_rel or pb_abs blocks (whichever is larger); no
#: simulated allocation failure or OOM kill the kernel did not have
TARGETS = {"ge9_rel": 0.10, "ge9_abs": 8, "l1_max": 0.10, "pb_rel": 0.05, "pb_abs": 3}

#: [SIM] a simulated failure counts as "near" the kernel's own failures when
#: the kernel failed a request of the same order within this many seconds of
#: it (a diagnostic beside the failure target, which it does not change)
FAILURE_NEAR_S = 2.0

#: pages per pageblock and the x86_64 4 GiB boundary (pfn)
_PB = 1 << pageblock_order
_PFN_4G = 1 << 20
#: seconds a snapshot's first file may lie outside its trace markers before the
#: trace and the snapshots count as different recordings
MARKER_SLACK_S = 5.0

_KPF_NOPAGE, _KPF_RESERVED = 20, 32


# ---------------------------------------------------------------- the recording

@dataclass
class Recording:
    """Where the parts of a recording are (``open_recording``)."""
    path: Path
    name: str
    trace: Path
    snapshots_dir: Path
    index: list            # [{seq, tag, t_first, dir, line}]
    manifest: dict = field(default_factory=dict)
    facts: Path | None = None

    def snapshot(self, tag):
        return next((s for s in self.index if s["tag"] == tag), None)


def _read_index(snapdir: Path) -> list[dict]:
    """snapshots/index.tsv (seq, tag, mono_ns_first_file, dir) or, without it,
    NNNN-tag folders; each row's folder must exist."""
    idx = snapdir / "index.tsv"
    out = []
    if idx.is_file():
        lines = idx.read_text(errors="replace").splitlines()
        if not lines:
            raise SpbsimError(f"{idx}: empty (expected a header: seq tag mono_ns_first_file dir)")
        head = lines[0].split("\t")
        for col in ("seq", "tag", "dir"):
            if col not in head:
                raise SpbsimError(f"{idx}:1: field '{col}': missing from the header "
                                  f"(expected seq, tag, mono_ns_first_file, dir)")
        for n, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            cells = line.split("\t")
            if len(cells) < len(head) - (1 if head[-1] == "files" else 0):
                raise SpbsimError(f"{idx}:{n}: expected {len(head)} tab-separated fields, "
                                  f"found {len(cells)}")
            row = dict(zip(head, cells))
            if not row["seq"].strip().isdigit():
                raise SpbsimError(f"{idx}:{n}: field 'seq': {row['seq']!r} is not a number")
            ns = row.get("mono_ns_first_file", "").strip()
            if ns and not ns.isdigit():
                raise SpbsimError(f"{idx}:{n}: field 'mono_ns_first_file': {ns!r} is not "
                                  f"a number")
            d = snapdir / row["dir"]
            if not d.is_dir():
                raise SpbsimError(f"{idx}:{n}: field 'dir': snapshot folder {d} is missing")
            out.append({"seq": int(row["seq"]), "tag": row["tag"],
                        "t_first": int(ns) / 1e9 if ns else None, "dir": d,
                        "where": f"{idx}:{n}"})
    else:
        for d in sorted(snapdir.iterdir()):
            m = re.match(r"(\d+)-(.+)$", d.name)
            if d.is_dir() and m:
                out.append({"seq": int(m.group(1)), "tag": m.group(2), "t_first": None,
                            "dir": d, "where": str(d)})
        if not out:
            raise SpbsimError(f"{snapdir}: no index.tsv and no NNNN-tag snapshot folders")
    seqs = [s["seq"] for s in out]
    if len(set(seqs)) != len(seqs):
        dup = next(s for s in out if seqs.count(s["seq"]) > 1)
        raise SpbsimError(f"{dup['where']}: field 'seq': {dup['seq']} appears twice")
    return sorted(out, key=lambda r: r["seq"])


def open_recording(path) -> Recording:
    """Find the trace, snapshots/ (with its index), manifest.json and facts/ of
    a recording directory; SpbsimError (one line) when a required part is
    missing or malformed."""
    p = Path(path)
    if not p.exists():
        raise SpbsimError(f"{path}: no such recording directory")
    if not p.is_dir():
        raise SpbsimError(f"{path}: not a directory: validate takes a recording directory "
                          f"(trace.txt[.xz|.zst|.gz], snapshots/, manifest.json)")
    trace = next((p / n for n in TRACE_NAMES if (p / n).is_file()), None)
    if trace is None:
        raise SpbsimError(f"{path}: no trace ({', '.join(TRACE_NAMES)}) in this recording")
    snapdir = p / "snapshots"
    if not snapdir.is_dir():
        raise SpbsimError(f"{path}: no snapshots/ folder: validate compares the simulation "
                          f"with the kernel's snapshots (docs/validate.md)")
    index = _read_index(snapdir)
    manifest = read_manifest(p / "manifest.json")
    facts = p / "facts" if (p / "facts").is_dir() else None
    name = str(manifest.get("run") or p.resolve().name)
    return Recording(p, name, trace, snapdir, index, manifest, facts)


def _fact(rec: Recording, name):
    if rec.facts is None or not (rec.facts / name).is_file():
        return None
    return (rec.facts / name).read_text(errors="replace").strip()


def _read(snap, name):
    """Parse one /proc file of a snapshot (None when absent)."""
    fn = snap["dir"] / name
    if not fn.is_file():
        return None
    return _parse_file(str(fn), name)


@functools.lru_cache(maxsize=512)
def _parse_file(fn, name):
    from spbsim.observe import procfs
    with open(fn, encoding="ascii", errors="replace") as f:
        text = f.read()
    nodes = set(re.findall(r"^Node (\d+),", text, re.M))
    if len(nodes) > 1:
        raise SpbsimError(f"{fn}: {len(nodes)} NUMA nodes ({', '.join(sorted(nodes))}): "
                          f"spbsim models one node")
    parse = {"buddyinfo": procfs.parse_buddyinfo, "pagetypeinfo": procfs.parse_pagetypeinfo,
             "zoneinfo": procfs.parse_zoneinfo, "vmstat": procfs.parse_vmstat,
             "meminfo": procfs.parse_meminfo}[name]
    return parse(text, str(fn))


def _kpageflags(snap):
    if snap is None:
        return None
    return next((snap["dir"] / n for n in KPAGEFLAGS_NAMES if (snap["dir"] / n).is_file()),
                None)


# ---------------------------------------------------------------- the machine

@dataclass
class RecordedMachine:
    """The machine a recording was made on, and the simulated one built to match."""
    zones: dict             # name -> {start_pfn, spanned, present, managed, min, ...}
    cpus: int
    kernel: str | None      # release, e.g. "6.12.117+deb12-amd64"
    policy: str
    machine_kwargs: dict
    notes: list = field(default_factory=list)
    source: str = ""        # where the zones came from
    cpu_ids: int = 0        # highest CPU number + 1 (CPUs may be offline in between)

    @property
    def label(self):
        from spbsim.mm.geometry import format_size
        g = self.machine_kwargs
        low = g["low_memory"]
        high = g["memory"] - low
        ver = (self.kernel or "kernel ?").split("+")[0].split("-")[0]
        mem = format_size(low) + (f"+{format_size(high)}" if high else "")
        return f"{ver}, {self.cpus} CPU{'s' if self.cpus != 1 else ''}, {mem}"

    def pfn_ranges(self):
        """[(zone, first pfn, end pfn)] as recorded (zoneinfo start_pfn + spanned)."""
        return [(n, z["start_pfn"], z["start_pfn"] + z["spanned"])
                for n, z in self.zones.items()]


def _kernel_release(rec: Recording):
    release = kernel_release(rec.manifest)
    if release:
        return release
    k = rec.manifest.get("kernel", {}) if isinstance(rec.manifest.get("kernel"), dict) else {}
    v = _fact(rec, "version") or k.get("proc_version")
    if v:
        m = re.search(r"Linux version (\S+)", v)
        if m:
            return m.group(1)
    return None


def _cpus(rec, zoneinfo, flag):
    for z in (zoneinfo or {}).values():
        if z.get("pagesets"):
            return len(z["pagesets"]), "zoneinfo pagesets"
    mach = rec.manifest.get("machine", {})
    if isinstance(mach, dict) and mach.get("vcpus"):
        return int(mach["vcpus"]), "manifest.json"
    online = _fact(rec, "cpu_online")
    if online:
        n = 0
        for part in online.split(","):
            a, _, b = part.partition("-")
            n += int(b) - int(a) + 1 if b else 1
        return n, "facts/cpu_online"
    if flag:
        return int(flag), "--cpus"
    raise SpbsimError(f"{rec.path}: CPU count unknown (no zoneinfo pagesets, manifest.json "
                      f"machine.vcpus or facts/cpu_online): pass --cpus")


def _sysctls(rec):
    """vm sysctls Machine takes, from facts/sysctl_vm_* or manifest.json."""
    keys = {"min_free_kbytes": "min_free_kbytes",
            "watermark_scale_factor": "watermark_scale_factor",
            "watermark_boost_factor": "watermark_boost_factor",
            "compaction_proactiveness": "compaction_proactiveness",
            "extfrag_threshold": "extfrag_threshold"}
    mach = rec.manifest.get("machine", {}) if isinstance(rec.manifest.get("machine"), dict) \
        else {}
    sv = mach.get("sysctl_vm", {}) if isinstance(mach.get("sysctl_vm"), dict) else {}
    out = {}
    for key, kw in keys.items():
        v = _fact(rec, f"sysctl_vm_{key}")
        if v is None:
            v = sv.get(key)
        if v is not None and str(v).strip().lstrip("-").isdigit():
            out[kw] = int(str(v).strip())
    return out


def _zones_from_zoneinfo(zi, where):
    zones = {}
    for name, z in zi.items():
        if not z.get("present"):
            continue
        if name not in ZONE_NAMES:
            raise SpbsimError(f"{where}: zone {name} has {z['present']} present pages: "
                              f"spbsim models DMA, DMA32 and Normal only")
        if "start_pfn" not in z:
            raise SpbsimError(f"{where}: zone {name}: field 'start_pfn' missing")
        zones[name] = {k: int(z[k]) for k in ("start_pfn", "spanned", "present", "managed")}
        for k in ("min", "low", "high", "promo", "boost"):
            if k in z:
                zones[name][k] = int(z[k])
        zones[name]["pagesets"] = z.get("pagesets", [])
    return zones


def _field_at(path, zone, field):
    """"path:line" of ``field`` in ``zone``'s block of a zoneinfo file."""
    inside = False
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.startswith("Node "):
                inside = line.split()[-1] == zone
            elif inside and line.split()[:1] == [field]:
                return f"{path}:{i}"
    return str(path)


def _zones_from_manifest(rec):
    mach = rec.manifest.get("machine", {})
    zl = mach.get("zones") if isinstance(mach, dict) else None
    if not zl:
        return None
    zones = {}
    for z in zl:
        if not int(z.get("present", 0)):
            continue
        name = z.get("zone")
        if name not in ZONE_NAMES:
            raise SpbsimError(f"{rec.path / 'manifest.json'}: zone {name!r} is populated: "
                              f"spbsim models DMA, DMA32 and Normal only")
        zones[name] = {k: int(z[k]) for k in ("start_pfn", "spanned", "present", "managed")}
        zones[name]["pagesets"] = z.get("pcp", [])
    return zones


def _round_up(n, a):
    return -(-int(n) // a) * a


def _runs(mask, base):
    """[(start pfn, end pfn)] of the True runs of ``mask`` (pfn = base + index)."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    s = np.flatnonzero(d == 1)
    e = np.flatnonzero(d == -1)
    return [(base + int(a), base + int(b)) for a, b in zip(s, e)]


def _layout(zones, managed, kpf, notes, blocks=None):
    """Geometry keywords (memory, low_memory, holes, reserved) whose zones have
    the recorded present and managed pages.  With the start snapshot's
    kpageflags: pageblocks with no struct page (KPF_NOPAGE) are holes, other
    NOPAGE and KPF_RESERVED pages are reserved where the kernel has them;
    pages still missing from the count are reserved at the zone's top (DMA:
    its bottom), where memblock puts the memmap.  ``blocks``: {zone: the
    pageblocks pagetypeinfo counts}; pageblocks beyond that count (memory a
    kernel with deferred struct page init has not initialised) are holes at
    the zone's top."""
    from spbsim.mm.geometry import MIN_MEMORY
    low_zones = [z for n, z in zones.items() if n in ("DMA", "DMA32")]
    if not low_zones:
        raise SpbsimError("the recording has no DMA or DMA32 zone: not an x86_64 layout "
                          "spbsim models")
    normal = zones.get("Normal")
    if normal is not None and normal["start_pfn"] != _PFN_4G:
        raise SpbsimError(f"zone Normal starts at pfn {normal['start_pfn']:#x}, not at 4 GiB "
                          f"({_PFN_4G:#x}): layout not modelled")
    nop = None if kpf is None else \
        ((kpf >> np.uint64(_KPF_NOPAGE)) & np.uint64(1)).astype(bool)

    def end_of(start, present):
        # present pages from ``start`` on, plus the whole pageblocks without
        # struct pages (KPF_NOPAGE) among them; rounded up to a pageblock
        end = _round_up(start + present, _PB)
        if nop is not None:
            for _ in range(4):
                k = min(len(nop), end) // _PB * _PB
                blk = nop[start // _PB * _PB:k].reshape(-1, _PB).all(1).sum() \
                    if k > start else 0
                new = _round_up(start + present + int(blk) * _PB, _PB)
                if new == end:
                    break
                end = new
        return end

    first = min(z["start_pfn"] for z in low_zones)
    low_pfns = min(end_of(first, sum(z["present"] for z in low_zones)), _PFN_4G)
    high_pfns = end_of(_PFN_4G, normal["present"]) - _PFN_4G if normal else 0
    if high_pfns and low_pfns < (256 << 8):
        low_pfns = 256 << 8        # Machine: at least 256 MiB below 4 GiB
    mem = (low_pfns + high_pfns) << 12
    if mem < MIN_MEMORY:
        raise SpbsimError(f"the recorded machine has {mem >> 20} MiB of RAM: spbsim models "
                          f"1 GiB to 4 TiB")
    ram = [(0, low_pfns)] + ([(_PFN_4G, _PFN_4G + high_pfns)] if high_pfns else [])
    sim_span = {"DMA": (0, min(4096, low_pfns)), "DMA32": (4096, low_pfns),
                "Normal": (_PFN_4G, _PFN_4G + high_pfns)}
    holes, reserved = [], []
    for name, z in zones.items():
        s, e = sim_span[name]
        if e <= s:
            continue
        taken = np.zeros(e - s, bool)
        if kpf is not None:
            k = max(min(len(kpf), e) - s, 0)
            zn = np.ones(e - s, bool)            # beyond the dump: no page
            zn[:k] = nop[s:s + k]
            # whole pageblocks without struct pages: holes (not present)
            if name != "DMA":
                pbs = zn[: (e - s) // _PB * _PB].reshape(-1, _PB).all(1)
                for a, b in _runs(pbs, 0):
                    holes.append(((s + a * _PB) << 12, ((b - a) * _PB) << 12))
                    taken[a * _PB: b * _PB] = True
        nblocks = int((~taken[: (e - s) // _PB * _PB].reshape(-1, _PB).all(1)).sum())
        extra = nblocks - blocks[name] if blocks and name in blocks and name != "DMA" else 0
        if extra > 0:
            pbs = np.flatnonzero(~taken[: (e - s) // _PB * _PB].reshape(-1, _PB).all(1))
            for b in pbs[len(pbs) - extra:]:
                taken[b * _PB:(b + 1) * _PB] = True
            for a, b in _runs(np.isin(np.arange((e - s) // _PB), pbs[len(pbs) - extra:]), 0):
                holes.append(((s + a * _PB) << 12, ((b - a) * _PB) << 12))
            notes.append(f"zone {name}: the kernel counts {blocks[name]} pageblocks, "
                         f"{extra} fewer than its present pages span (memory not yet "
                         f"initialised: deferred struct page init?); the simulated zone "
                         f"has them as a hole at its top")
        present = int((~taken).sum())
        need = present - managed[name]
        res = np.zeros(e - s, bool)
        if need < 0:
            notes.append(f"zone {name}: the simulated zone has {present} present pages, "
                         f"fewer than the {managed[name]} the kernel manages")
            need = 0
        if kpf is not None and need:
            k = max(min(len(kpf), e) - s, 0)
            cand = np.ones(e - s, bool)
            cand[:k] = nop[s:s + k] | ((kpf[s:s + k] >> np.uint64(_KPF_RESERVED))
                                       & np.uint64(1)).astype(bool)
            cand &= ~taken
            idx = np.flatnonzero(cand)[:need]
            res[idx] = True
            need -= len(idx)
        if need:
            free_idx = np.flatnonzero(~taken & ~res)
            pick = free_idx[:need] if name == "DMA" else free_idx[len(free_idx) - need:]
            res[pick] = True
        for a, b in _runs(res, s):
            reserved.append((a << 12, (b - a) << 12))
    return {"memory": mem, "low_memory": low_pfns << 12, "holes": tuple(holes),
            "reserved": tuple(reserved), "kernel_image": 0, "memmap_bytes_per_page": 0,
            "firmware_reserved": 0}, ram


def recorded_machine(rec: Recording, *, policy=None, memory=None, low_memory=None,
                     cpus=None) -> RecordedMachine:
    """The recorded machine: zones from the start snapshot's zoneinfo (else the
    first snapshot with one, else manifest.json, else --memory/--low-memory),
    managed pages at their largest over the snapshots (a kernel with deferred
    memory init grows them), CPUs, kernel version -> policy, vm sysctls; and
    Machine keywords whose zones have those present and managed pages."""
    from spbsim.policy import Policy
    notes = []
    start = rec.snapshot("start") or rec.index[0]
    if rec.snapshot("start") is None:
        notes.append(f"no 'start' snapshot: machine read from {start['dir'].name}")
    zi, src = None, None
    for s in [start] + [x for x in rec.index if x is not start]:
        zi = _read(s, "zoneinfo")
        if zi is not None:
            src = str(s["dir"] / "zoneinfo")
            break
    zones = _zones_from_zoneinfo(zi, src) if zi is not None else None
    if zones is None:
        zones = _zones_from_manifest(rec)
        src = str(rec.path / "manifest.json") if zones else None
    if zones is None:
        if memory is None:
            raise SpbsimError(f"{rec.path}: no zoneinfo in the snapshots and no zones in "
                              f"manifest.json: pass --memory (and --low-memory)")
        from spbsim.mm.geometry import build_geometry
        g = build_geometry(memory, low_memory=low_memory)
        zones = {ZONE_NAMES[z]: {"start_pfn": int(g.zone_start[z]),
                                 "spanned": int(g.zone_end[z] - g.zone_start[z]),
                                 "present": int(g.zone_end[z] - g.zone_start[z]),
                                 "managed": int(g.zone_end[z] - g.zone_start[z]),
                                 "pagesets": []}
                 for z in range(len(ZONE_NAMES)) if g.zone_end[z] > g.zone_start[z]}
        src = "--memory/--low-memory"
        notes.append("zones from --memory/--low-memory: the recording has no zoneinfo")
    # managed pages at their largest over the snapshots; the layout must not change
    managed = {n: z["managed"] for n, z in zones.items()}
    grown = {}
    for s in rec.index:
        if src and s["dir"] / "zoneinfo" == Path(src):
            continue
        zs = _read(s, "zoneinfo") if src and src.endswith("zoneinfo") else None
        if zs is None:
            continue
        where = str(s["dir"] / "zoneinfo")
        now = _zones_from_zoneinfo(zs, where)
        if set(now) != set(zones):
            raise SpbsimError(f"{where}: populated zones {sorted(now)} differ from "
                              f"{sorted(zones)} in {src}: snapshots from another machine")
        for n, z in now.items():
            for k in ("start_pfn", "spanned", "present"):
                if z[k] != zones[n][k]:
                    raise SpbsimError(f"{where}: zone {n}: field '{k}' is {z[k]}, but {src} "
                                      f"says {zones[n][k]}: snapshots from another machine")
            if z["managed"] > managed[n]:
                grown[n] = z["managed"]
                managed[n] = z["managed"]
    for n, z in zones.items():
        z["managed_max"] = managed[n]
    for n, v in grown.items():
        notes.append(f"zone {n}: managed pages grew during the recording ({zones[n]['managed']}"
                     f" -> {v}, deferred memory init?): the simulated zone has the largest")
    mz = _zones_from_manifest(rec)
    if mz and src and src.endswith("zoneinfo"):
        for n, z in mz.items():
            if n not in zones or any(z[k] != zones[n][k] for k in ("start_pfn", "spanned")):
                raise SpbsimError(f"{rec.path / 'manifest.json'}: zone {n} does not match "
                                  f"{src} (start_pfn/spanned): manifest from another machine")
    ncpu, cpu_src = _cpus(rec, zi, cpus)
    if not 1 <= ncpu <= 256:
        raise SpbsimError(f"{rec.path}: {ncpu} CPUs ({cpu_src}): spbsim models 1 to 256")
    kernel = _kernel_release(rec)
    if policy is None:
        policy, note = policy_for_kernel(kernel)
        if note:
            notes.append(note)
    kw = Policy.parse(policy).machine_kwargs()
    kpath = _kpageflags(start)
    kpf = None
    if kpath is not None:
        from spbsim.trace.kpageflags import load_kpageflags
        try:
            kpf = load_kpageflags(kpath)
        except (ValueError, OSError, EOFError) as e:
            raise SpbsimError(f"{kpath}: unreadable kpageflags dump: {e}") from None
        top = max(z["start_pfn"] + z["present"] for z in zones.values())
        if len(kpf) < min(top, max(z["start_pfn"] + z["spanned"] for z in zones.values())):
            raise SpbsimError(f"{kpath}: {len(kpf)} pfns, but the zones reach pfn {top:#x}: "
                              f"kpageflags from another machine")
    blocks = {}
    for s in rec.index:      # pageblocks counted by pagetypeinfo, at their largest
        pti = _read(s, "pagetypeinfo")
        if pti is None:
            continue
        for i, n in enumerate(pti["zone_names"]):
            blocks[n] = max(blocks.get(n, 0), int(pti["block_count"][i].sum()))
    geom, _ = _layout(zones, managed, kpf, notes, blocks)
    kw.update(geom)
    kw.update(_sysctls(rec))
    if "min_free_kbytes" not in kw and all("min" in z for z in zones.values()):
        # zoneinfo min = _watermark[WMARK_MIN] + boost; their sum is min_free_kbytes / 4
        kw["min_free_kbytes"] = 4 * sum(z["min"] - z.get("boost", 0) for z in zones.values())
    marks = {}
    for n, z in zones.items():
        if all(k in z for k in ("min", "low", "high")):
            # zoneinfo prints each mark plus the boost of the moment
            b = z.get("boost", 0)
            keys = [k for k in ("min", "low", "high", "promo") if k in z]
            marks[n] = tuple(z[k] - b for k in keys)
            for lo, hi in zip(keys, keys[1:]):
                if z[hi] < z[lo] or z[lo] < b:
                    raise SpbsimError(f"{_field_at(src, n, hi)}: zone {n}: field '{hi}' is "
                                      f"{z[hi]}, below '{lo}' {z[lo]} (boost {b}): not a "
                                      f"kernel's watermarks")
    if marks and len(marks) == len(zones):
        kw["watermarks"] = marks
    kw["cpus"] = ncpu
    ids = [int(p["cpu"]) for z in (zi or {}).values() for p in z.get("pagesets", [])]
    return RecordedMachine(zones=zones, cpus=ncpu, kernel=kernel, policy=policy,
                           machine_kwargs=kw, notes=notes, source=src or "",
                           cpu_ids=max(ids + [ncpu - 1]) + 1)


def machine_differences(rm: RecordedMachine, machine) -> list[str]:
    """"warning: ..." lines for zones whose simulated managed pages or min
    watermark differ from the recording's, "note: ..." lines for present
    pages only (holes smaller than a pageblock are reserved pages here)."""
    from spbsim.mm.state import ZSTAT, ZS_MANAGED
    out = []
    m = machine.mem
    for name, z in rm.zones.items():
        zi = ZONE_NAMES.index(name)
        sp, sm = int(m.zstat[zi, ZSTAT["present"]]), int(m.zstat[zi, ZS_MANAGED])
        rp, rmg = z["present"], z.get("managed_max", z["managed"])
        diffs = []
        if sp != rp:
            note = f"zone {name}: present {sp} simulated vs {rp} recorded ({sp - rp:+d}"
            out.append("note: " + note + (", held as reserved pages: holes smaller than a "
                                          "pageblock)" if sp > rp else ")"))
        if sm != rmg:
            diffs.append(f"managed {sm} simulated vs {rmg} recorded ({sm - rmg:+d})")
        if "min" in z:
            smin = int(m.zstat[zi, ZSTAT["wmark_min"]])
            rmin = z["min"] - z.get("boost", 0)
            if abs(smin - rmin) > max(2, rmin // 100):
                diffs.append(f"min watermark {smin} simulated vs {rmin} recorded")
        if diffs:
            out.append(f"warning: zone {name}: " + ", ".join(diffs))
    return out


# ---------------------------------------------------------------- metrics

def ge_blocks(nr_free, order):
    """Free 2^order-page units in buddies of order >= ``order`` (one zone)."""
    nr = np.asarray(nr_free, np.int64)
    o = np.arange(len(nr))
    hi = o >= order
    return int((nr[hi] << (o[hi] - order)).sum())


def zone_metrics(sim_nr, real_nr, sim_pb=None, real_pb=None, sim_pcp=None, real_pcp=None,
                 targets=TARGETS) -> dict:
    """Sim-vs-real metrics of one zone at one snapshot, and the targets met.

    ``*_nr``: nr_free per order; ``*_pb``: {migratetype: pageblocks};
    ``*_pcp``: pages on per-cpu lists.  L1 = Σ_o |sim_o - real_o| · 2^o pages,
    in % of the real free pages.  ok_* is None where the real side is missing.
    """
    s = np.zeros(NR_PAGE_ORDERS, np.int64)
    r = np.zeros(NR_PAGE_ORDERS, np.int64)
    if len(sim_nr) > NR_PAGE_ORDERS or len(real_nr) > NR_PAGE_ORDERS:
        raise SpbsimError(f"buddyinfo with {max(len(sim_nr), len(real_nr))} orders: "
                          f"MAX_PAGE_ORDER {MAX_PAGE_ORDER} is modelled")
    s[:len(sim_nr)] = sim_nr
    r[:len(real_nr)] = real_nr
    w = np.int64(1) << np.arange(NR_PAGE_ORDERS)
    free_s, free_r = int((s * w).sum()), int((r * w).sum())
    l1 = int((np.abs(s - r) * w).sum())
    l1_pct = 100.0 * l1 / free_r if free_r else (0.0 if l1 == 0 else math.inf)
    g9s, g9r = ge_blocks(s, 9), ge_blocks(r, 9)
    g10s, g10r = ge_blocks(s, 10), ge_blocks(r, 10)
    out = {"free_sim": free_s, "free_real": free_r, "l1_pages": l1, "l1_pct": l1_pct,
           "ge9_sim": g9s, "ge9_real": g9r, "ge9_pages_sim": g9s << 9, "ge9_pages_real": g9r << 9,
           "ge10_sim": g10s, "ge10_real": g10r,
           "ge10_pages_sim": g10s << 10, "ge10_pages_real": g10r << 10,
           "nr_free_sim": s.tolist(), "nr_free_real": r.tolist(),
           "pcp_sim": sim_pcp, "pcp_real": real_pcp}
    tol9 = max(targets["ge9_rel"] * g9r, targets["ge9_abs"])
    out["ok_ge9"] = bool(abs(g9s - g9r) <= tol9)
    out["ok_l1"] = bool(l1 <= targets["l1_max"] * free_r)
    if sim_pb is not None and real_pb is not None:
        names = list(dict.fromkeys(list(real_pb) + list(sim_pb)))
        out["pb_sim"] = {n: int(sim_pb.get(n, 0)) for n in names}
        out["pb_real"] = {n: int(real_pb.get(n, 0)) for n in names}
        worst, ok, worst_r = None, True, -1.0
        for n in names:
            a, b = out["pb_sim"][n], out["pb_real"][n]
            tol = max(targets["pb_rel"] * b, targets["pb_abs"])
            if abs(a - b) > tol:
                ok = False
            if abs(a - b) / tol > worst_r:        # the type furthest off, against its target
                worst, worst_r = (n, a - b), abs(a - b) / tol
        out["ok_pb"] = ok
        out["pb_worst"] = worst
    else:
        out["pb_sim"] = dict(sim_pb) if sim_pb else None
        out["pb_real"] = None
        out["ok_pb"] = None
        out["pb_worst"] = None
    return out


def _real_side(snap, zones_expected):
    """(nr_free by zone, pageblocks by zone, pcp by zone, vmstat) of a real snapshot."""
    bi = _read(snap, "buddyinfo")
    nr = {}
    if bi is not None:
        names, table = bi
        if table.shape[1] - 1 != MAX_PAGE_ORDER:
            raise SpbsimError(f"{snap['dir'] / 'buddyinfo'}: {table.shape[1]} orders, i.e. "
                              f"MAX_PAGE_ORDER {table.shape[1] - 1}: spbsim models "
                              f"{MAX_PAGE_ORDER}")
        nr = {n: table[i] for i, n in enumerate(names)}
        for n in zones_expected:
            if n not in nr:
                raise SpbsimError(f"{snap['dir'] / 'buddyinfo'}: no zone {n}, which the "
                                  f"machine has: a snapshot from another machine")
    pti = _read(snap, "pagetypeinfo")
    pb = {}
    if pti is not None:
        if pti["pageblock_order"] != pageblock_order:
            raise SpbsimError(f"{snap['dir'] / 'pagetypeinfo'}: pageblock order "
                              f"{pti['pageblock_order']}: spbsim models {pageblock_order}")
        for i, n in enumerate(pti["zone_names"]):
            pb[n] = {mt: int(pti["block_count"][i, j]) for j, mt in enumerate(pti["mt_names"])}
    zi = _read(snap, "zoneinfo")
    pcp = {}
    for n, z in (zi or {}).items():
        if z.get("pagesets"):
            pcp[n] = sum(int(p["count"]) for p in z["pagesets"])
    vm = _read(snap, "vmstat")
    return nr, pb, pcp, vm


def _trace_clock_is_mono(rec: Recording) -> bool:
    """The trace's timestamps are CLOCK_MONOTONIC (as the index's
    mono_ns_first_file): facts/tracing_trace_clock or manifest.json say so."""
    k = rec.manifest.get("kernel", {}) if isinstance(rec.manifest.get("kernel"), dict) else {}
    for text in (_fact(rec, "tracing_trace_clock"), k.get("trace_clock")):
        if text:
            return text.strip() == "mono" or "[mono]" in text
    return False


def compare(result: dict, rec: Recording, rm: RecordedMachine, targets=TARGETS) -> list[dict]:
    """One row per simulated snapshot that has a real counterpart (same seq):
    seq, tag, ts, zones -> zone_metrics(), failures (traced allocations the
    simulator failed so far, by order), OOM kills (simulated total vs the
    kernel's since the start snapshot) and the verdict."""
    real = {s["seq"]: s for s in rec.index}
    start = rec.snapshot("start") or rec.index[0]
    vm0 = _read(start, "vmstat") or {}
    rows = []
    seen_marker = False
    mono = _trace_clock_is_mono(rec)
    for snap in result["snapshots"]:
        if snap.get("seq") is None:
            continue
        seen_marker = True
        s = real.get(snap["seq"])
        if s is None:
            raise SpbsimError(f"{rec.trace}:{snap.get('line', '?')}: snapshot marker seq="
                              f"{snap['seq']} tag={snap['tag']} has no row in "
                              f"{rec.snapshots_dir / 'index.tsv'}: trace and snapshots from "
                              f"different recordings")
        if s["tag"] != snap["tag"]:
            raise SpbsimError(f"{rec.trace}:{snap.get('line', '?')}: snapshot marker seq="
                              f"{snap['seq']} has tag {snap['tag']}, {s['where']} says "
                              f"{s['tag']}: trace and snapshots from different recordings")
        lo = snap.get("ts_begin")
        lo = snap.get("ts") if lo is None else lo
        if mono and s["t_first"] is not None and snap.get("ts") is not None \
                and not lo - MARKER_SLACK_S <= s["t_first"] <= snap["ts"] + MARKER_SLACK_S:
            raise SpbsimError(f"{s['where']}: field 'mono_ns_first_file': snapshot {s['seq']} "
                              f"was read at {s['t_first']:.3f} s, outside its markers in the "
                              f"trace ({lo:.3f} s to {snap['ts']:.3f} s): trace and snapshots "
                              f"from different "
                              f"recordings (or a trace clock other than mono)")
        nr, pb, pcp, vm = _real_side(s, rm.zones)
        if not nr:
            continue
        fails = snap.get("sim_failures_by_order") or [0] * NR_PAGE_ORDERS
        oom_real = None
        if vm is not None and "oom_kill" in vm:
            oom_real = vm["oom_kill"] - vm0.get("oom_kill", 0)
        row = {"seq": snap["seq"], "tag": snap["tag"], "ts": snap.get("ts"), "zones": {},
               "sim_failures_by_order": list(fails), "sim_failures": int(sum(fails)),
               "oom_sim": snap.get("oom_kill"), "oom_real": oom_real}
        for name, z in snap["zones"].items():
            if name not in nr:
                continue
            row["zones"][name] = zone_metrics(
                z.get("nr_free", []), nr[name], z.get("pageblocks"), pb.get(name),
                z.get("pcp_pages"), pcp.get(name), targets)
        row["ok_failures"] = row["sim_failures"] == 0 and (
            row["oom_sim"] is None or row["oom_sim"] <= (oom_real or 0))
        row["ok"] = row["ok_failures"] and all(
            m["ok_ge9"] and m["ok_l1"] and m["ok_pb"] is not False
            for m in row["zones"].values())
        rows.append(row)
    if not seen_marker:
        raise SpbsimError(f"{rec.trace}: no 'oracle_snap_end seq=N tag=T' markers: the "
                          f"snapshots cannot be placed in the stream (docs/validate.md)")
    return rows


# ---------------------------------------------------------------- the command

def _compaction_cost(rm, rec, cost):
    """Set kcompactd's [SIM] cost in the recorded machine's kwargs; notes."""
    if cost is None:
        return []
    if cost == "recorded":
        from spbsim.trace.compaction_cost import compactions, costs
        runs = compactions(rec.trace)
        scan_ns, mig_us, n_idle, n_busy = costs(runs)
        if mig_us is None:
            return [f"note: compaction cost: {len(runs)} compactions in the trace, no "
                    f"kcompactd one migrated 100 pages; the defaults stay"]
        rm.machine_kwargs["compaction_migrate_us"] = max(0.0, round(mig_us, 3))
        if scan_ns is not None:
            rm.machine_kwargs["compaction_scan_ns"] = round(scan_ns, 1)
        scan = "default" if scan_ns is None else f"{scan_ns:.0f} ns per scanned page ({n_idle})"
        return [f"note: compaction cost from the trace: {mig_us:.1f} us per migrated page "
                f"(median of {n_busy} kcompactd compactions), scan {scan}"]
    mig_us, scan_ns = cost
    rm.machine_kwargs["compaction_migrate_us"] = mig_us
    rm.machine_kwargs["compaction_scan_ns"] = scan_ns
    return []


def validate(path, *, policy=None, memory=None, low_memory=None, cpus=None, max_lines=None,
             progress=False, check=False, detail=False, start_seed=None,
             compaction_cost=None) -> dict:
    """Validate a recording: returns {recording, machine, notes, rows, summary,
    whatif, ...} (see docs/validate.md).  ``detail``: keep the simulated /proc
    files of every snapshot (for ``--out``).  ``start_seed``: draw the start
    state /proc does not show with this seed
    (spbsim.trace.start.draw_hidden_state).  ``compaction_cost``: kcompactd's
    [SIM] cost, (us per migrated page, ns per scanned page), or "recorded"
    for the medians of the recording's own kcompactd compactions (the
    Machine defaults where it has too few)."""
    from spbsim.machine import Machine
    from spbsim.trace.whatif import replay_whatif
    rec = open_recording(path)
    rm = recorded_machine(rec, policy=policy, memory=memory, low_memory=low_memory, cpus=cpus)
    for s in rec.index:         # every snapshot's files parse, before the replay
        _real_side(s, rm.zones)
    cost_notes = _compaction_cost(rm, rec, compaction_cost)
    machine = Machine(**rm.machine_kwargs)
    diffs = machine_differences(rm, machine) + cost_notes
    r = replay_whatif(rec.trace, machine, progress=progress, max_lines=max_lines,
                      snapshots_dir=rec.snapshots_dir, pfn_ranges=rm.pfn_ranges(),
                      snapshot_detail=detail, check=check, trace_cpus=rm.cpu_ids,
                      start_seed=start_seed)
    rows = compare(r, rec, rm)
    r.pop("machine")
    uc = r.get("user_compactions") or {}
    if uc.get("zones") and not uc.get("direct_traced"):
        diffs.append(f"note: {uc['zones']} zone compactions replayed as compact_memory writes; "
                     f"the trace has no mm_compaction_try_to_compact_pages events, so a "
                     f"direct compaction that began sync at its zone's start may be among them")
    out = {"recording": rec.name, "path": str(rec.path), "trace": str(rec.trace),
           "kernel": rm.kernel, "policy": rm.policy, "cpus": rm.cpus, "label": rm.label,
           "machine": {"zones": {n: {k: v for k, v in z.items() if k != "pagesets"}
                                 for n, z in rm.zones.items()},
                       "kwargs": {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in rm.machine_kwargs.items()
                                  if k not in ("holes", "reserved")},
                       "holes": len(rm.machine_kwargs.get("holes", ())),
                       "reserved_ranges": len(rm.machine_kwargs.get("reserved", ())),
                       "zones_from": rm.source},
           "notes": [f"note: {n}" for n in rm.notes] + diffs,
           "targets": dict(TARGETS), "rows": rows, "summary": _summary(rows),
           "failures": failures_near_kernel(r.get("failure_log"), until=_end_ts(rows)),
           "whatif": r, "max_lines": max_lines, "start_seed": start_seed}
    return out


def failures_near_kernel(log, near_s=FAILURE_NEAR_S, until=None) -> dict:
    """Each simulated failure with the signed time (s) to the nearest
    allocation of the same order the kernel failed (None if it failed none;
    the earlier of two as near), and how many of those lie within
    ``near_s``: where the kernel itself was failing such requests, which
    request fails is a matter of timing.  ``log``: the replay's failure_log
    (spbsim.trace.whatif); ``until``: only the simulated failures up to this
    time (s), the last compared snapshot's, as the failure target counts."""
    log = log or {"sim": [], "kernel": [], "complete": True}
    kern = {}
    for t, o, _c in log["kernel"]:
        kern.setdefault(o, []).append(t)
    for ts in kern.values():
        ts.sort()
    sim = []
    for t, o, c in log["sim"]:
        if until is not None and t > until:
            continue
        ks = kern.get(o, [])
        i = bisect.bisect_left(ks, t)
        cand = [ks[j] for j in (i - 1, i) if 0 <= j < len(ks)]
        nearest = min(cand, key=lambda k: abs(k - t)) if cand else None
        lo, hi = bisect.bisect_left(ks, t - near_s), bisect.bisect_right(ks, t + near_s)
        sim.append({"t": t, "order": o, "cpu": c,
                    "kernel_nearest_s": None if nearest is None else round(nearest - t, 6),
                    "kernel_within": hi - lo})
    by_order = [0] * NR_PAGE_ORDERS
    for _t, o, _c in log["kernel"]:
        by_order[o] += 1
    return {"near_s": near_s, "sim": sim, "complete": log["complete"],
            "near": sum(1 for f in sim if f["kernel_within"] > 0),
            "kernel_failed_by_order": by_order}


def end_row(rows):
    """The row the summary ends at: the snapshot tagged end, else the last
    one compared (None without rows)."""
    return next((r for r in rows if r["tag"] == "end"), rows[-1] if rows else None)


def _end_ts(rows):
    """The time of end_row(rows), or None."""
    end = end_row(rows)
    return None if end is None else end.get("ts")


def _summary(rows):
    within = sum(1 for r in rows if r["ok"])
    end = end_row(rows)
    zs = [m for r in rows for m in r["zones"].values()]
    met = {"ge9": sum(bool(m["ok_ge9"]) for m in zs), "l1": sum(bool(m["ok_l1"]) for m in zs),
           "pageblocks": sum(m["ok_pb"] is not False for m in zs), "zone_snapshots": len(zs),
           "failures": sum(bool(r["ok_failures"]) for r in rows)}
    return {"snapshots": len(rows), "within_targets": within, "targets_met": met,
            "end": None if end is None else {"seq": end["seq"], "tag": end["tag"],
                                             "ok": end["ok"]}}


def _ok(v):
    return "-" if v is None else ("ok" if v else "FAIL")


def format_summary(out) -> str:
    """One line: recording [kernel, CPUs, memory], snapshots within targets,
    the end snapshot per zone."""
    rows = out["rows"]
    s = out["summary"]
    head = (f"{out['recording']} [{out['label']}, policy {out['policy']}]: "
            f"{s['within_targets']}/{s['snapshots']} snapshots within targets")
    if not rows:
        return head + " (no snapshot compared)"
    end = next(r for r in rows if r["seq"] == s["end"]["seq"])
    parts = []
    for name, m in end["zones"].items():
        p = f"{name} >=9 {m['ge9_sim']}/{m['ge9_real']} blocks ({_ok(m['ok_ge9'])}), " \
            f"L1 {_pct(m['l1_pct'])} ({_ok(m['ok_l1'])})"
        if m["ok_pb"] is not None:
            p += f", pageblocks ({_ok(m['ok_pb'])})"
        parts.append(p)
    fails = f"sim failures {end['sim_failures']}"
    near = out.get("failures")
    if end["sim_failures"] and near and near["sim"]:
        of = "" if near["complete"] else f" of the first {len(near['sim'])} logged"
        fails += f" ({near['near']}{of} within {near['near_s']:g} s of one the kernel failed)"
    oom = f"OOM kills {end['oom_sim']}/{'-' if end['oom_real'] is None else end['oom_real']}"
    return head + f"; {end['tag']}: " + "; ".join(parts) + \
        f"; {fails}, {oom} ({_ok(end['ok_failures'])})"


def _pct(x):
    return "inf" if x is None or math.isinf(x) else f"{x:.1f}%"


def format_table(out) -> str:
    """One row per snapshot and zone: free pages, >=9 blocks, L1 %, the
    pageblock type furthest off, pcp pages (sim/real), failures, OOM kills."""
    lines = [f"{'seq':>4} {'tag':<14} {'t':>8} {'zone':<7} {'free sim/real':>17} "
             f"{'>=9 sim/real':>13} {'L1 %':>7} {'pageblocks worst':>20} "
             f"{'pcp sim/real':>13} {'fails':>6} {'oom':>7}  ok"]
    for r in out["rows"]:
        for name, m in r["zones"].items():
            w = m["pb_worst"]
            pbw = "-" if w is None else (f"{w[0][:5]} {w[1]:+d}" + ("" if m["ok_pb"] else "!"))
            pcp = f"{'-' if m['pcp_sim'] is None else m['pcp_sim']}/" \
                  f"{'-' if m['pcp_real'] is None else m['pcp_real']}"
            zok = m["ok_ge9"] and m["ok_l1"] and m["ok_pb"] is not False and r["ok_failures"]
            oom = f"{r['oom_sim']}/{'-' if r['oom_real'] is None else r['oom_real']}"
            lines.append(
                f"{r['seq']:>4} {r['tag']:<14} {r['ts'] or 0:>8.2f} {name:<7} "
                f"{str(m['free_sim']) + '/' + str(m['free_real']):>17} "
                f"{str(m['ge9_sim']) + '/' + str(m['ge9_real']) + ('' if m['ok_ge9'] else '!'):>13} "
                f"{_pct(m['l1_pct']) + ('' if m['ok_l1'] else '!'):>7} {pbw:>20} {pcp:>13} "
                f"{r['sim_failures']:>6} {oom:>7}  {'ok' if zok else 'FAIL'}")
    t = out["targets"]
    met = out["summary"].get("targets_met")
    if met:
        n = met["zone_snapshots"]
        lines.append(f"met per zone and snapshot: >=9 blocks {met['ge9']}/{n}, L1 {met['l1']}/{n}, "
                     f"pageblocks {met['pageblocks']}/{n}; no failure or OOM kill "
                     f"{met['failures']}/{out['summary']['snapshots']} snapshots")
    lines.append(f"targets: >=9 blocks within {t['ge9_rel']:.0%} or {t['ge9_abs']} blocks; L1 "
                 f"<= {t['l1_max']:.0%} of free pages; pageblocks per type within "
                 f"{t['pb_rel']:.0%} or {t['pb_abs']}; no simulated failure or OOM kill the "
                 f"kernel did not have ('!' marks a miss)")
    return "\n".join(lines) + "\n"


#: columns of metrics.parquet (one row per snapshot and zone)
METRIC_COLUMNS = ("seq", "tag", "ts", "zone", "free_sim", "free_real", "l1_pages", "l1_pct",
                  "ge9_sim", "ge9_real", "ge10_sim", "ge10_real", "pcp_sim", "pcp_real",
                  "sim_failures", "oom_sim", "oom_real", "ok_ge9", "ok_l1", "ok_pb", "ok")


def metrics_frame(out):
    """pandas DataFrame of the per-snapshot per-zone metrics (METRIC_COLUMNS,
    then pb_sim_<type> / pb_real_<type> and nr_sim_<o> / nr_real_<o>)."""
    import pandas as pd
    recs = []
    for r in out["rows"]:
        for name, m in r["zones"].items():
            d = {"seq": r["seq"], "tag": r["tag"], "ts": r["ts"], "zone": name,
                 "sim_failures": r["sim_failures"], "oom_sim": r["oom_sim"],
                 "oom_real": r["oom_real"], "ok": r["ok"]}
            for k in METRIC_COLUMNS:
                if k in m:
                    d[k] = m[k]
            d["l1_pct"] = float(m["l1_pct"])
            for side in ("sim", "real"):
                for mt, v in (m.get(f"pb_{side}") or {}).items():
                    d[f"pb_{side}_{mt}"] = v
                for o, v in enumerate(m[f"nr_free_{side}"]):
                    d[f"nr_{side}_{o}"] = v
            recs.append(d)
    df = pd.DataFrame.from_records(recs)
    for c in ("pcp_sim", "pcp_real", "oom_sim", "oom_real"):
        if c in df:
            df[c] = df[c].astype("float64")
    for c in ("ok_pb",):
        if c in df:
            df[c] = df[c].astype("float64")
    return df


VALIDATE_JSON = "validate.json"
METRICS = "metrics.parquet"


def jsonable(out):
    """The result without the simulated /proc texts (those go to sim/)."""
    o = dict(out)
    w = dict(o["whatif"])
    w["snapshots"] = [{k: v for k, v in s.items() if k not in ("proc", "vmstat")}
                      for s in w["snapshots"]]
    o["whatif"] = w
    return o


def write_results(out, d):
    """A results directory: validate.json, metrics.parquet and sim/NNNN-tag/
    with the simulated buddyinfo, pagetypeinfo, zoneinfo and vmstat."""
    from spbsim.results import _dump_json
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    sim = d / "sim"
    sim.mkdir(exist_ok=True)
    for s in out["whatif"]["snapshots"]:
        if "proc" not in s or s.get("seq") is None:
            continue
        sd = sim / f"{s['seq']:04d}-{s['tag']}"
        sd.mkdir(exist_ok=True)
        for name, text in s["proc"].items():
            (sd / name).write_text(text)
    metrics_frame(out).to_parquet(d / METRICS, index=False)
    tmp = d / (VALIDATE_JSON + ".tmp")
    tmp.write_text(_dump_json(jsonable(out)))
    os.replace(tmp, d / VALIDATE_JSON)
    return d
