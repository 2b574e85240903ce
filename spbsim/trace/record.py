"""``spbsim record``: make a recording ``spbsim validate`` reads, on this host.

Root and tracefs required.  The events go to a tracefs instance of our own
(``instances/spbsim-record-PID``: its own ring buffer, clock and events), so
the global tracing state is never touched and removing the instance restores
it.  trace_pipe is streamed to ``trace.txt.zst`` (or ``.xz``) by a thread
while COMMAND runs; /proc snapshots, bracketed by ``oracle_snap_begin/end``
markers in the same buffer, are taken at the start, periodically and at the
end.  docs/validate.md describes the layout.
"""
from __future__ import annotations

import errno
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from spbsim.errors import SpbsimError

__all__ = ["record", "REQUIRED_EVENTS", "OPTIONAL_EVENTS", "SNAPSHOT_FILES", "FULL_FILES",
           "parse_period", "find_tracefs"]

#: the events the replays read (spbsim.trace.ftrace); recording fails without them
REQUIRED_EVENTS = ("kmem/mm_page_alloc", "kmem/mm_page_free", "kmem/mm_page_free_batched",
                   "kmem/mm_page_alloc_zone_locked", "kmem/mm_page_pcpu_drain",
                   "kmem/mm_page_alloc_extfrag")
#: low-volume context events (compaction windows, reclaim, OOM); enabled when present
OPTIONAL_EVENTS = ("compaction/mm_compaction_begin", "compaction/mm_compaction_end",
                   "compaction/mm_compaction_isolate_freepages",
                   "compaction/mm_compaction_isolate_migratepages",
                   "compaction/mm_compaction_migratepages",
                   "compaction/mm_compaction_try_to_compact_pages",
                   "compaction/mm_compaction_wakeup_kcompactd", "migrate/mm_migrate_pages",
                   "oom/mark_victim", "vmscan/mm_vmscan_direct_reclaim_begin",
                   "vmscan/mm_vmscan_direct_reclaim_end", "vmscan/mm_vmscan_kswapd_sleep",
                   "vmscan/mm_vmscan_kswapd_wake", "vmscan/mm_vmscan_wakeup_kswapd")
#: /proc files of every snapshot (debugfs extfrag files when debugfs is mounted)
SNAPSHOT_FILES = ("/proc/buddyinfo", "/proc/pagetypeinfo", "/proc/zoneinfo", "/proc/vmstat",
                  "/proc/meminfo", "/sys/kernel/debug/extfrag/unusable_index",
                  "/sys/kernel/debug/extfrag/extfrag_index")
#: and of the start and end snapshots
FULL_FILES = SNAPSHOT_FILES + ("/proc/slabinfo", "/proc/swaps")
_FACTS = {"version": "/proc/version", "cmdline": "/proc/cmdline", "cpuinfo": "/proc/cpuinfo",
          "meminfo": "/proc/meminfo", "iomem": "/proc/iomem", "swaps": "/proc/swaps",
          "cpu_online": "/sys/devices/system/cpu/online",
          "node_online": "/sys/devices/system/node/online",
          "thp_enabled": "/sys/kernel/mm/transparent_hugepage/enabled",
          "thp_defrag": "/sys/kernel/mm/transparent_hugepage/defrag",
          "thp_khugepaged_defrag": "/sys/kernel/mm/transparent_hugepage/khugepaged/defrag",
          "thp_hpage_pmd_size": "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
          "module_page_alloc_shuffle": "/sys/module/page_alloc/parameters/shuffle"}
_SYSCTLS = ("min_free_kbytes", "watermark_scale_factor", "watermark_boost_factor",
            "lowmem_reserve_ratio", "percpu_pagelist_high_fraction", "zone_reclaim_mode",
            "extfrag_threshold", "compaction_proactiveness", "swappiness",
            "overcommit_memory", "page_lock_unfairness")
_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_READ = 1 << 20


def parse_period(text) -> float:
    """'2s', '500ms', '1.5' (seconds) -> seconds (> 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise SpbsimError(f"--snapshot-every {text!r}: expected a positive duration such "
                          f"as 2s or 500ms")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def find_tracefs(mount=True):
    """(tracefs directory, whether we mounted it)."""
    for d in _TRACEFS:
        if os.path.exists(os.path.join(d, "trace_pipe")):
            return Path(d), False
    if mount and os.path.isdir(_TRACEFS[0]):
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", _TRACEFS[0]],
                           capture_output=True, text=True)
        if r.returncode == 0 and os.path.exists(os.path.join(_TRACEFS[0], "trace_pipe")):
            return Path(_TRACEFS[0]), True
        raise SpbsimError(f"no tracefs: `mount -t tracefs nodev {_TRACEFS[0]}` failed: "
                          f"{(r.stderr or r.stdout).strip() or 'exit ' + str(r.returncode)}")
    raise SpbsimError(f"no tracefs at {' or '.join(_TRACEFS)} (kernel without "
                      f"CONFIG_FTRACE, or /sys not mounted)")


def _readb(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


class _Compressor:
    """A file written through zstandard or lzma (both release the GIL)."""

    def __init__(self, path, kind):
        self.f = open(path, "wb")
        if kind == "zst":
            import zstandard
            self.c = zstandard.ZstdCompressor(level=3).compressobj()
        else:
            import lzma
            self.c = lzma.LZMACompressor(preset=1)

    def write(self, data):
        out = self.c.compress(data)
        if out:
            self.f.write(out)

    def close(self):
        self.f.write(self.c.flush())
        self.f.close()


def _compress_bytes(data, kind):
    if kind == "zst":
        import zstandard
        return zstandard.ZstdCompressor(level=3).compress(data)
    import lzma
    return lzma.compress(data, preset=1)


class _PipeReader(threading.Thread):
    """Copies an instance's trace_pipe to a compressed file until stopped and
    drained; counts bytes and lines, keeps the first and last line."""

    def __init__(self, pipe, out, kind):
        super().__init__(name="spbsim-trace-pipe", daemon=True)
        self.fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        self.out = _Compressor(out, kind)
        self.stop = threading.Event()
        self.raw_bytes = 0
        self.lines = 0
        self.first = None
        self.tail = b""
        self.error = None

    def run(self):
        poll = select.poll()
        poll.register(self.fd, select.POLLIN)
        try:
            while True:
                try:
                    data = os.read(self.fd, _READ)
                except BlockingIOError:
                    data = None
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EINTR):
                        raise
                    data = None
                if data:
                    if self.first is None:
                        self.first = data.split(b"\n", 1)[0]
                    self.raw_bytes += len(data)
                    self.lines += data.count(b"\n")
                    self.tail = (self.tail + data)[-4096:]
                    self.out.write(data)
                    continue
                if self.stop.is_set():
                    break
                poll.poll(100)
        except Exception as e:      # reported by record()
            self.error = e
        finally:
            os.close(self.fd)
            self.out.close()

    def last_line(self):
        lines = [x for x in self.tail.split(b"\n") if x.strip()]
        return lines[-1] if lines else None


_TS = re.compile(rb"\s(\d+\.\d+):\s")


def _ts(line):
    m = _TS.search(line or b"")
    return float(m.group(1)) if m else None


class _Instance:
    """A tracefs instance of our own; ``close()`` removes it."""

    def __init__(self, tracefs: Path, name: str):
        self.root = tracefs / "instances" / name
        if not (tracefs / "instances").is_dir():
            raise SpbsimError(f"{tracefs}/instances: missing (kernel without tracefs "
                              f"instances): cannot record without touching the global "
                              f"trace buffer")
        os.mkdir(self.root)
        self.marker_fd = None

    def path(self, rel):
        return self.root / rel

    def set(self, rel, value):
        try:
            _write(self.root / rel, str(value))
        except OSError as e:
            raise SpbsimError(f"{self.root / rel}: cannot write {value!r}: "
                              f"{e.strerror or e}") from None

    def marker(self, text):
        if self.marker_fd is None:
            self.marker_fd = os.open(self.root / "trace_marker", os.O_WRONLY)
        os.write(self.marker_fd, text.encode())

    def close(self):
        if self.marker_fd is not None:
            os.close(self.marker_fd)
            self.marker_fd = None
        try:
            _write(self.root / "tracing_on", "0")
            _write(self.root / "events/enable", "0")
        except OSError:
            pass
        for _ in range(50):          # rmdir fails while a reader still has trace_pipe open
            try:
                os.rmdir(self.root)
                return
            except OSError:
                time.sleep(0.1)


class _Snapshots:
    """Numbered snapshots: marker, read every file into memory, marker, write."""

    def __init__(self, inst, snapdir: Path, kpageflags_kind, max_pfn):
        self.inst, self.dir = inst, snapdir
        self.kind, self.max_pfn = kpageflags_kind, max_pfn
        self.seq = 0
        self.rows = []
        snapdir.mkdir()

    def take(self, tag, files, kpageflags=False):
        self.seq += 1
        seq = self.seq
        self.inst.marker(f"oracle_snap_begin seq={seq} tag={tag}")
        t_first = time.monotonic_ns()
        got = {}
        for f in files:
            try:
                got[os.path.basename(f)] = _readb(f)
            except OSError:
                pass
        kpf = _read_kpageflags(self.max_pfn) if kpageflags else None
        self.inst.marker(f"oracle_snap_end seq={seq} tag={tag}")
        d = self.dir / f"{seq:04d}-{tag}"
        d.mkdir()
        for name, data in got.items():
            (d / name).write_bytes(data)
        names = sorted(got)
        if kpf is not None:
            name = "kpageflags.bin." + self.kind
            (d / name).write_bytes(_compress_bytes(kpf, self.kind))
            names.append("kpageflags")
        self.rows.append((seq, tag, t_first, d.name, ",".join(names)))
        self._write_index()
        return d

    def _write_index(self):
        text = "seq\ttag\tmono_ns_first_file\tdir\tfiles\n" + "".join(
            "\t".join(str(x) for x in r) + "\n" for r in self.rows)
        tmp = self.dir / "index.tsv.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.dir / "index.tsv")


def _read_kpageflags(max_pfn):
    buf = bytearray(max_pfn * 8)
    view = memoryview(buf)
    n = 0
    with open("/proc/kpageflags", "rb", buffering=0) as f:
        while n < len(buf):
            k = f.readinto(view[n:n + (4 << 20)])
            if not k:
                break
            n += k
    return bytes(view[:n])


def _zones(zoneinfo_text):
    from spbsim.observe.procfs import parse_zoneinfo
    zi = parse_zoneinfo(zoneinfo_text, "/proc/zoneinfo")
    out = []
    for name, z in zi.items():
        if not z.get("present"):
            continue
        out.append({"node": z.get("node", 0), "zone": name,
                    **{k: z[k] for k in ("min", "low", "high", "spanned", "present", "managed")
                       if k in z},
                    "lowmem_reserve": z.get("protection", []),
                    "pcp": [{k: p[k] for k in ("cpu", "count", "high", "batch") if k in p}
                            for p in z.get("pagesets", [])],
                    "start_pfn": z.get("start_pfn")})
    return out


def _facts(tracefs, inst, facts: Path, events):
    facts.mkdir()
    for name, src in _FACTS.items():
        try:
            (facts / name).write_bytes(_readb(src))
        except OSError:
            pass
    for k in _SYSCTLS:
        try:
            (facts / f"sysctl_vm_{k}").write_bytes(_readb(f"/proc/sys/vm/{k}"))
        except OSError:
            pass
    for e in events:
        sysname, ev = e.split("/")
        try:
            (facts / f"format-{sysname}-{ev}").write_bytes(
                _readb(tracefs / "events" / sysname / ev / "format"))
        except OSError:
            pass
    for h in ("header_page", "header_event"):
        try:
            (facts / f"format-{h}").write_bytes(_readb(tracefs / "events" / h))
        except OSError:
            pass
    for rel, name in (("trace_clock", "tracing_trace_clock"),
                      ("buffer_size_kb", "tracing_buffer_size_kb"),
                      ("buffer_total_size_kb", "tracing_buffer_total_size_kb"),
                      ("set_event", "tracing_set_event"),
                      ("options/overwrite", "tracing_options_overwrite")):
        try:
            (facts / name).write_bytes(_readb(inst.path(rel)))
        except OSError:
            pass


def _cpu_stats(inst):
    """per_cpu/cpuN/stats of the instance -> {cpu: {field: int}}."""
    out = {}
    pc = inst.path("per_cpu")
    if not pc.is_dir():
        return out
    for d in sorted(pc.iterdir()):
        m = re.fullmatch(r"cpu(\d+)", d.name)
        if not m:
            continue
        try:
            text = (d / "stats").read_text()
        except OSError:
            continue
        st = {}
        for line in text.splitlines():
            k, _, v = line.partition(":")
            v = v.strip()
            if re.fullmatch(r"\d+", v):
                st[k.strip().replace(" ", "_")] = int(v)
        out[m.group(1)] = st
    return out


def record(command, *, out_dir=None, snapshot_every="2s", kpageflags=False, buffer_kb=65536,
           compress="zst", echo=print) -> int:
    """Run ``command`` while recording; returns its exit status (130 when
    interrupted).  Raises SpbsimError (one line) when recording is not
    possible: not root, no tracefs, required events missing, --out exists."""
    period = parse_period(snapshot_every)
    if not command:
        raise SpbsimError("record: no COMMAND (usage: spbsim record [OPTIONS] -- COMMAND ...)")
    if compress not in ("zst", "xz"):
        raise SpbsimError(f"--compress {compress!r}: allowed zst or xz")
    if buffer_kb < 1024:
        raise SpbsimError(f"--buffer-kb {buffer_kb}: need at least 1024")
    if platform.system() != "Linux" or not os.path.exists("/proc/buddyinfo"):
        raise SpbsimError("record: needs a Linux host (/proc/buddyinfo)")
    if os.geteuid() != 0:
        raise SpbsimError("record: must run as root (tracefs, /proc/pagetypeinfo and "
                          "/proc/kpageflags are root-only)")
    if shutil.which(command[0]) is None and not os.path.exists(command[0]):
        raise SpbsimError(f"record: command not found: {command[0]}")
    out = Path(out_dir or time.strftime("rec-%Y%m%d-%H%M%S"))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpbsimError(f"{out}: exists and is not empty: choose another --out")
    tracefs, mounted = find_tracefs()
    old_term = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)     # clean up as on Ctrl-C
    try:
        missing = [e for e in REQUIRED_EVENTS if not (tracefs / "events" / e / "enable").exists()]
        if missing:
            raise SpbsimError(f"{tracefs}/events: missing {', '.join(missing)}: the kernel "
                              f"lacks the kmem tracepoints the replays read")
        optional = [e for e in OPTIONAL_EVENTS if (tracefs / "events" / e / "enable").exists()]
        out.mkdir(parents=True, exist_ok=True)
        return _record(command, out, tracefs, period, kpageflags, buffer_kb, compress,
                       optional, echo)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, old_term)
        if mounted:
            subprocess.run(["umount", str(tracefs)], capture_output=True)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _record(command, out, tracefs, period, kpageflags, buffer_kb, compress, optional, echo):
    events = list(REQUIRED_EVENTS) + optional
    t_wall0 = time.time()
    inst = _Instance(tracefs, f"spbsim-record-{os.getpid()}")
    reader = None
    child = None
    rc = None
    interrupted = False
    timing = {}
    snaps = None
    try:
        inst.set("tracing_on", "0")
        clocks = inst.path("trace_clock").read_text()
        clock = "mono" if re.search(r"\bmono\b", clocks) else "local"
        inst.set("trace_clock", clock)
        inst.set("buffer_size_kb", buffer_kb)
        inst.set("options/overwrite", "0")
        for e in events:
            inst.set(f"events/{e}/enable", "1")
        _write(inst.path("trace"), "")
        _facts(tracefs, inst, out / "facts", events)
        zi_text = _readb("/proc/zoneinfo").decode()
        zones = _zones(zi_text)
        max_pfn = max(z["start_pfn"] + z["spanned"] for z in zones)
        snaps = _Snapshots(inst, out / "snapshots", compress, max_pfn)
        trace_path = out / f"trace.txt.{compress}"
        reader = _PipeReader(inst.path("trace_pipe"), trace_path, compress)
        reader.start()
        inst.set("tracing_on", "1")
        timing["tracing_on"] = time.monotonic()
        echo(f"spbsim record: tracing {len(events)} events into {trace_path} "
             f"(clock {clock}, {buffer_kb} KiB per CPU)")
        snaps.take("start", FULL_FILES, kpageflags)
        n = 0
        try:
            timing["command_start"] = time.monotonic()
            child = subprocess.Popen(command)
            nxt = time.monotonic() + period
            while True:
                try:
                    rc = child.wait(timeout=max(nxt - time.monotonic(), 0))
                    break
                except subprocess.TimeoutExpired:
                    n += 1
                    snaps.take(f"periodic-{n:04d}", SNAPSHOT_FILES)
                    nxt += period
                    while nxt < time.monotonic():
                        nxt += period
        except KeyboardInterrupt:
            interrupted = True
            echo("spbsim record: interrupted; stopping COMMAND and finishing the recording")
            if child is not None:
                try:
                    rc = child.wait(timeout=5)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    child.terminate()
                    try:
                        rc = child.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        rc = child.wait()
        timing["command_end"] = time.monotonic()
        snaps.take("end", FULL_FILES, kpageflags)
        inst.set("tracing_on", "0")
        timing["tracing_off"] = time.monotonic()
        reader.stop.set()
        reader.join()
        timing["drained"] = time.monotonic()
        if reader.error is not None:
            raise SpbsimError(f"{trace_path}: copying trace_pipe failed: {reader.error}")
        stats = _cpu_stats(inst)
    finally:
        if reader is not None and reader.is_alive():
            try:
                _write(inst.path("tracing_on"), "0")
            except OSError:
                pass
            reader.stop.set()
            reader.join(timeout=30)
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        inst.close()
    lost = {c: {k: v for k, v in s.items() if k in ("overrun", "dropped_events") and v}
            for c, s in stats.items()}
    lost = {c: v for c, v in lost.items() if v}
    complete = not lost           # no ring-buffer overrun or dropped event
    manifest = {
        "run": out.name,
        "recorder": "spbsim record",
        "command": list(command),
        "exit_code": rc,
        "interrupted": interrupted,
        "kernel": {"release": platform.release(),
                   "proc_version": _readb("/proc/version").decode().strip(),
                   "MAX_PAGE_ORDER": _max_order(out), "pageblock_order": _pb_order(out),
                   "trace_clock": clock, "trace_buffer_size_kb_per_cpu": buffer_kb,
                   "trace_events": events},
        "machine": _machine(zones, out),
        "timing_s": {k: round(v - timing.get("tracing_on", v), 3) for k, v in timing.items()},
        "trace": {"file": trace_path.name, "raw_bytes": reader.raw_bytes,
                  "compressed_bytes": trace_path.stat().st_size, "lines": reader.lines,
                  "first_ts": _ts(reader.first), "last_ts": _ts(reader.last_line()),
                  "per_cpu_stats": stats, "lost": lost, "complete": complete},
        "snapshots": {"count": len(snaps.rows), "tags": [f"{r[0]:04d}-{r[1]}" for r in snaps.rows],
                      "periodic_ms": round(period * 1000)},
        "wall_s": round(time.time() - t_wall0, 2),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    echo(f"spbsim record: {reader.lines} trace lines ({reader.raw_bytes >> 20} MiB, "
         f"{trace_path.stat().st_size >> 20} MiB compressed), {len(snaps.rows)} snapshots in "
         f"{out}/" + ("; COMMAND interrupted" if interrupted else "")
         + ("" if complete else f"; INCOMPLETE: the ring buffer lost events {lost} "
                                f"(raise --buffer-kb)"))
    if rc is None:
        return 130 if interrupted else 1
    return 128 - rc if rc < 0 else rc          # killed by a signal: as a shell says it


def _max_order(out):
    try:
        line = (out / "snapshots" / "0001-start" / "buddyinfo").read_text().splitlines()[0]
        return len(line.split(",", 1)[1].split()[2:]) - 1
    except (OSError, IndexError):
        return None


def _pb_order(out):
    try:
        text = (out / "snapshots" / "0001-start" / "pagetypeinfo").read_text()
    except OSError:
        return None
    m = re.search(r"Page block order: (\d+)", text)
    return int(m.group(1)) if m else None


def _machine(zones, out):
    low = sum(z["present"] for z in zones if z["zone"] in ("DMA", "DMA32"))
    high = sum(z["present"] for z in zones if z["zone"] not in ("DMA", "DMA32"))
    sysctl = {}
    for k in _SYSCTLS:
        f = out / "facts" / f"sysctl_vm_{k}"
        if f.is_file():
            sysctl[k] = f.read_text().strip()
    online = (out / "facts" / "cpu_online")
    cpus = online.read_text().strip() if online.is_file() else None
    n = 0
    for part in (cpus or "").split(","):
        a, _, b = part.partition("-")
        if a.strip().isdigit():
            n += int(b) - int(a) + 1 if b.strip().isdigit() else 1
    return {"vcpus": n or os.cpu_count(), "cpus_online": cpus,
            "ram_mb": -(-(low + high) * 4096 // (2 << 20)) * 2,
            "ram_below_4g_mb": -(-low * 4096 // (2 << 20)) * 2,
            "zones": zones, "sysctl_vm": sysctl}
