"""Streaming reader of ftrace text: tracefs ``trace``/``trace_pipe`` and ``trace-cmd report``.

Line shape: ``<comm>-<pid> [(<tgid>)] [<cpu>] [<flags>] <ts>: <event>: <text>``.
:class:`TraceReader` ``.batches()`` yields numpy structured arrays
(:data:`EVENT_DTYPE`, kind codes equal to ``spbsim.mm.state.EV``);
``.records()`` yields one dataclass per line.  Both use the strict
:func:`parse_line`: a malformed line raises :class:`TraceFormatError` naming
file:line, event and field, or is counted and skipped with ``lenient=True``.
Plain, xz, gz and zst input; columns, record types and speed: docs/replay.md
and docs/performance.md.
"""
from __future__ import annotations

import gzip
import io
import lzma
import os
import queue
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import ClassVar, Iterable, Iterator

import numpy as np

from spbsim.errors import SpbsimError
from spbsim.mm.gfp import parse_gfp

__all__ = [
    "MM_PAGE_ALLOC", "MM_PAGE_FREE", "MM_PAGE_ALLOC_ZONE_LOCKED", "MM_PAGE_PCPU_DRAIN",
    "MM_PAGE_ALLOC_EXTFRAG", "MM_PAGE_FREE_BATCHED", "TRACING_MARK_WRITE", "OTHER_EVENT",
    "LOST_EVENTS", "KIND_NAMES", "KIND_BY_NAME", "KMEM_KINDS", "EVENT_DTYPE",
    "TraceFormatError", "TraceEvent", "MmPageAlloc", "MmPageFree", "MmPageFreeBatched",
    "MmPageAllocZoneLocked", "MmPagePcpuDrain", "MmPageAllocExtfrag", "TracingMarkWrite",
    "OtherEvent", "LostEvents", "TraceBatch", "TraceReader",
    "open_trace", "parse_line", "iter_records", "read_batches", "read_trace",
    "concat_batches",
]

# ---------------------------------------------------------------------------
# Kind codes and the batch dtype
# ---------------------------------------------------------------------------

MM_PAGE_ALLOC = 0
MM_PAGE_FREE = 1
MM_PAGE_ALLOC_ZONE_LOCKED = 2
MM_PAGE_PCPU_DRAIN = 3
MM_PAGE_ALLOC_EXTFRAG = 4
MM_PAGE_FREE_BATCHED = 5
TRACING_MARK_WRITE = 6
OTHER_EVENT = 7
LOST_EVENTS = 8

KIND_NAMES = ("mm_page_alloc", "mm_page_free", "mm_page_alloc_zone_locked",
              "mm_page_pcpu_drain", "mm_page_alloc_extfrag", "mm_page_free_batched",
              "tracing_mark_write", "other", "lost")
KIND_BY_NAME = {name: code for code, name in enumerate(KIND_NAMES[:7])}
KMEM_KINDS = frozenset(range(6))

#: one row per trace line kept; see the module docstring for the column mapping
EVENT_DTYPE = np.dtype([
    ("kind", "u1"), ("cpu", "<u2"), ("pid", "<i4"), ("comm", "<i4"),
    ("ts", "<f8"), ("line", "<i8"),
    ("pfn", "<i8"), ("order", "i1"), ("migratetype", "i1"), ("gfp", "<u8"),
    ("percpu_refill", "i1"), ("failed", "?"),
    ("fallback_order", "i1"), ("fallback_migratetype", "i1"), ("pageblock_order", "i1"),
    ("fragmenting", "i1"), ("change_ownership", "i1"),
    ("aux", "<i4"),
])

_NULL_PAGES = frozenset({"0000000000000000", "00000000", "(null)", "(nil)", "0", "0x0"})


class TraceFormatError(SpbsimError, ValueError):
    """A malformed trace line; ``str()`` is ``file:line: event: field 'x': detail``."""

    def __init__(self, filename, lineno, event, fieldname, detail):
        self.filename, self.lineno, self.event = filename, lineno, event
        self.field, self.detail = fieldname, detail
        where = f"{filename}:{lineno}: "
        if event:
            where += f"{event}: "
        if fieldname:
            where += f"field '{fieldname}': "
        super().__init__(where + detail)

    @property
    def reason(self) -> str:
        """Short key used to count lenient skips."""
        if self.field:
            return f"{self.event}: field '{self.field}'"
        if self.event:
            return f"{self.event}: {self.detail.split(':')[0]}"
        return self.detail.split(":")[0]


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------

@dataclass(slots=True)
class TraceEvent:
    """Common header of every trace line."""
    comm: str
    pid: int
    cpu: int
    flags: str
    ts: float
    line: int

    kind: ClassVar[int] = OTHER_EVENT
    name: ClassVar[str] = ""


@dataclass(slots=True)
class MmPageAlloc(TraceEvent):
    """``mm_page_alloc``; ``failed`` when page is NULL (pfn printed 0)."""
    pfn: int = 0
    order: int = 0
    migratetype: int = 0
    gfp_flags: int = 0
    failed: bool = False
    kind: ClassVar[int] = MM_PAGE_ALLOC
    name: ClassVar[str] = "mm_page_alloc"


@dataclass(slots=True)
class MmPageFree(TraceEvent):
    """``mm_page_free``."""
    pfn: int = 0
    order: int = 0
    kind: ClassVar[int] = MM_PAGE_FREE
    name: ClassVar[str] = "mm_page_free"


@dataclass(slots=True)
class MmPageFreeBatched(TraceEvent):
    """``mm_page_free_batched`` (order is the printed constant 0)."""
    pfn: int = 0
    order: int = 0
    kind: ClassVar[int] = MM_PAGE_FREE_BATCHED
    name: ClassVar[str] = "mm_page_free_batched"


@dataclass(slots=True)
class MmPageAllocZoneLocked(TraceEvent):
    """``mm_page_alloc_zone_locked``."""
    pfn: int = 0
    order: int = 0
    migratetype: int = 0
    percpu_refill: int = 0
    kind: ClassVar[int] = MM_PAGE_ALLOC_ZONE_LOCKED
    name: ClassVar[str] = "mm_page_alloc_zone_locked"


@dataclass(slots=True)
class MmPagePcpuDrain(TraceEvent):
    """``mm_page_pcpu_drain``."""
    pfn: int = 0
    order: int = 0
    migratetype: int = 0
    kind: ClassVar[int] = MM_PAGE_PCPU_DRAIN
    name: ClassVar[str] = "mm_page_pcpu_drain"


@dataclass(slots=True)
class MmPageAllocExtfrag(TraceEvent):
    """``mm_page_alloc_extfrag``."""
    pfn: int = 0
    alloc_order: int = 0
    fallback_order: int = 0
    pageblock_order: int = 0
    alloc_migratetype: int = 0
    fallback_migratetype: int = 0
    fragmenting: int = 0
    change_ownership: int = 0
    kind: ClassVar[int] = MM_PAGE_ALLOC_EXTFRAG
    name: ClassVar[str] = "mm_page_alloc_extfrag"


@dataclass(slots=True)
class TracingMarkWrite(TraceEvent):
    """A ``trace_marker`` write (``print:`` event in trace-cmd); ``text`` as written."""
    text: str = ""
    kind: ClassVar[int] = TRACING_MARK_WRITE
    name: ClassVar[str] = "tracing_mark_write"


@dataclass(slots=True)
class OtherEvent(TraceEvent):
    """Any other event: ``event`` name, ``text`` (as printed, leading blanks
    dropped) and its ``key=value`` pairs.

    Values in ``args`` are ints when they read as decimal or 0x-hex (``gfp_flags``
    and ``gfp_mask`` as masks via ``parse_gfp``), else str (``range=(0x1 ~ 0x2)``
    keeps its parentheses; a trailing ',' is dropped).
    """
    event: str = ""
    text: str = ""
    args: dict = field(default_factory=dict)
    kind: ClassVar[int] = OTHER_EVENT
    name: ClassVar[str] = "other"


@dataclass(slots=True)
class LostEvents(TraceEvent):
    """``CPU:N [LOST M EVENTS]`` (trace_pipe) or ``[M EVENTS DROPPED]``; ``count`` = M."""
    count: int = 0
    kind: ClassVar[int] = LOST_EVENTS
    name: ClassVar[str] = "lost"


# ---------------------------------------------------------------------------
# Opening (plain, xz, gz, zst)
# ---------------------------------------------------------------------------

_MAGIC = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b", "gz"), (b"(\xb5/\xfd", "zst"))


def _compression(path) -> str:
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return ""


class _Decompressed(io.RawIOBase):
    """Raw stream of decompressed bytes; ``compressed_pos()`` for progress."""

    def __init__(self, path):
        self._raw = open(path, "rb")
        kind = _compression(path)
        if kind == "xz":
            self._dec = lzma.LZMAFile(self._raw)
        elif kind == "gz":
            self._dec = gzip.GzipFile(fileobj=self._raw)
        elif kind == "zst":
            import zstandard
            self._dec = zstandard.ZstdDecompressor().stream_reader(
                self._raw, read_across_frames=True, closefd=False)
        else:
            self._dec = self._raw
        self.compression = kind

    def readable(self):
        return True

    def readinto(self, b):
        return self._dec.readinto(b)

    def read(self, size=-1):
        if size is None or size < 0:
            return self.readall()
        return self._dec.read(size)

    def compressed_pos(self) -> int:
        return self._raw.tell()

    def close(self):
        if not self.closed:
            if self._dec is not self._raw:
                self._dec.close()
            self._raw.close()
        super().close()


def open_trace(path, mode: str = "rt", *, encoding: str = "utf-8", errors: str = "replace"):
    """Open a plain, ``.xz``, ``.gz`` or ``.zst`` file (detected by magic), streaming.

    ``mode`` is ``"rt"`` (text; lines end at ``\\n`` only) or ``"rb"``.
    """
    if mode not in ("rt", "r", "rb"):
        raise ValueError(f"open_trace: unsupported mode {mode!r}")
    buf = io.BufferedReader(_Decompressed(os.fspath(path)), buffer_size=1 << 20)
    if mode == "rb":
        return buf
    return io.TextIOWrapper(buf, encoding=encoding, errors=errors, newline="\n")


# ---------------------------------------------------------------------------
# The strict per-line parser (slow path, authority for every odd line)
# ---------------------------------------------------------------------------

_HDR = re.compile(
    r" *(?P<comm>.*?)-(?P<pid>\d+) +(?:\( *(?:\d+|-+)\) +)?\[(?P<cpu>\d+)\] +"
    r"(?:(?P<flags>[^ ]{4,5}) +)?(?P<ts>\d+(?:\.\d+)?): (?P<event>\w+):(?P<body>.*)")
_LOST = re.compile(r"CPU:(\d+) \[(?:LOST (\d+) EVENTS|(\d+) EVENTS DROPPED)\]")
_SKIP = re.compile(r"cpus=\d+|CPU \d+ is empty|version = \d+")
_KV = re.compile(r"(\w+)=(\([^)]*\)|[^\s,]+),?")
_DEC = re.compile(r"-?\d+")
_HEXNUM = re.compile(r"0x[0-9a-fA-F]+")


def _int_in(lo, hi, what="integer"):
    def conv(v):
        if not _DEC.fullmatch(v):
            raise ValueError(f"expected {what}, got {v!r}")
        x = int(v)
        if not lo <= x <= hi:
            raise ValueError(f"value {x} out of range [{lo}, {hi}]")
        return x
    return conv


def _pfn(v):
    if _HEXNUM.fullmatch(v):
        x = int(v, 16)
    elif _DEC.fullmatch(v) and not v.startswith("-"):
        x = int(v)          # old kernels print pfn=%lu
    else:
        raise ValueError(f"expected hex pfn, got {v!r}")
    if x >= 1 << 63:
        raise ValueError(f"value {x:#x} out of range")
    return x


def _gfp(v):
    try:
        return parse_gfp(v)
    except ValueError as e:
        raise ValueError(f"expected gfp flags, got {v!r} ({e})") from None


_ORDER = _int_in(0, 63, "integer")
_I8 = _int_in(-128, 127, "integer")

#: event -> (class, ((attribute, printed key, converter, default-if-absent), ...))
_REQUIRED = object()
_KMEM_SPECS = {
    "mm_page_alloc": (MmPageAlloc, (
        ("pfn", "pfn", _pfn, _REQUIRED), ("order", "order", _ORDER, _REQUIRED),
        ("migratetype", "migratetype", _I8, _REQUIRED),
        ("gfp_flags", "gfp_flags", _gfp, _REQUIRED))),
    "mm_page_free": (MmPageFree, (
        ("pfn", "pfn", _pfn, _REQUIRED), ("order", "order", _ORDER, _REQUIRED))),
    "mm_page_free_batched": (MmPageFreeBatched, (
        ("pfn", "pfn", _pfn, _REQUIRED), ("order", "order", _ORDER, 0))),
    "mm_page_alloc_zone_locked": (MmPageAllocZoneLocked, (
        ("pfn", "pfn", _pfn, _REQUIRED), ("order", "order", _ORDER, _REQUIRED),
        ("migratetype", "migratetype", _I8, _REQUIRED),
        ("percpu_refill", "percpu_refill", _I8, _REQUIRED))),
    "mm_page_pcpu_drain": (MmPagePcpuDrain, (
        ("pfn", "pfn", _pfn, _REQUIRED), ("order", "order", _ORDER, _REQUIRED),
        ("migratetype", "migratetype", _I8, _REQUIRED))),
    "mm_page_alloc_extfrag": (MmPageAllocExtfrag, (
        ("pfn", "pfn", _pfn, _REQUIRED), ("alloc_order", "alloc_order", _ORDER, _REQUIRED),
        ("fallback_order", "fallback_order", _ORDER, _REQUIRED),
        ("pageblock_order", "pageblock_order", _ORDER, _REQUIRED),
        ("alloc_migratetype", "alloc_migratetype", _I8, _REQUIRED),
        ("fallback_migratetype", "fallback_migratetype", _I8, _REQUIRED),
        ("fragmenting", "fragmenting", _I8, _REQUIRED),
        ("change_ownership", "change_ownership", _I8, _REQUIRED))),
}


def _auto(v: str):
    if _DEC.fullmatch(v):
        return int(v)
    if _HEXNUM.fullmatch(v):
        return int(v, 16)
    return v


def _gfp_arg(v: str):
    try:
        return parse_gfp(v)
    except ValueError:
        return v


def _kmem(event, body, head, filename, lineno):
    cls, spec = _KMEM_SPECS[event]
    kv = {}
    for tok in body.split():
        key, sep, val = tok.partition("=")
        if not sep or not key:
            raise TraceFormatError(filename, lineno, event, None,
                                   f"garbled text: expected key=value, got {tok!r}")
        kv[key] = val
    vals = {}
    for attr, key, conv, default in spec:
        raw = kv.get(key)
        if raw is None:
            if default is _REQUIRED:
                raise TraceFormatError(filename, lineno, event, key, "missing")
            vals[attr] = default
            continue
        try:
            vals[attr] = conv(raw)
        except ValueError as e:
            raise TraceFormatError(filename, lineno, event, key, str(e)) from None
    if cls is MmPageAlloc:
        vals["failed"] = vals["pfn"] == 0 and kv.get("page", "0") in _NULL_PAGES
    return cls(*head, **vals)


def parse_line(line: str, lineno: int = 0, filename: str = "<string>"):
    """Parse one line into a :class:`TraceEvent`, or None for comments/blank/headers.

    Raises :class:`TraceFormatError` for a malformed line.
    """
    line = line.rstrip("\r\n")
    s = line.strip()
    if not s or s.startswith("#") or _SKIP.fullmatch(s):
        return None
    m = _LOST.fullmatch(s)
    if m:
        return LostEvents("", -1, int(m.group(1)), "", float("nan"), lineno,
                          int(m.group(2) or m.group(3)))
    m = _HDR.fullmatch(line)
    if m is None:
        raise TraceFormatError(filename, lineno, None, None,
                               f"garbled line: no 'comm-pid [cpu] ts: event:' header: "
                               f"{line[:100]!r}")
    comm, pid, cpu, flags, ts, event, body = m.group(
        "comm", "pid", "cpu", "flags", "ts", "event", "body")
    pid, cpu = int(pid), int(cpu)
    if pid >= 1 << 31 or cpu >= 1 << 16:
        raise TraceFormatError(filename, lineno, event, "pid" if pid >= 1 << 31 else "cpu",
                               "value out of range")
    head = (comm, pid, cpu, flags or "", float(ts), lineno)
    if event in _KMEM_SPECS:
        return _kmem(event, body, head, filename, lineno)
    text = body[1:] if body.startswith(" ") else body
    if event == "tracing_mark_write":
        return TracingMarkWrite(*head, text=text)
    if event == "print":            # trace-cmd: "print: <padding>tracing_mark_write: text"
        t = text.lstrip(" ")
        if t.startswith("tracing_mark_write:"):
            t = t[len("tracing_mark_write:"):]
            return TracingMarkWrite(*head, text=t[1:] if t.startswith(" ") else t)
    text = text.lstrip(" ")         # trace-cmd pads after "event:"
    args = {k: _gfp_arg(v) if k in ("gfp_flags", "gfp_mask") else _auto(v)
            for k, v in _KV.findall(text)}
    return OtherEvent(*head, event=event, text=text, args=args)


def iter_records(lines: Iterable[str], filename: str = "<string>", *, lenient: bool = False,
                 errors: Counter | None = None, start: int = 1) -> Iterator[TraceEvent]:
    """Parse an iterable of text lines (numbered from ``start``) into records."""
    for lineno, line in enumerate(lines, start):
        try:
            rec = parse_line(line, lineno, filename)
        except TraceFormatError as e:
            if not lenient:
                raise
            if errors is not None:
                errors[e.reason] += 1
            continue
        if rec is not None:
            yield rec


# ---------------------------------------------------------------------------
# The fast path: one findall per chunk, column conversion with caches
# ---------------------------------------------------------------------------

_FAST = re.compile(
    rb"^ *+(.*?)-(\d+) +(?:\( *(?:\d+|-+)\) +)?\[(\d+)\] +(?:[^ ]{4,5} +)?(\d+(?:\.\d+)?): "
    rb"(\w+): +(?:page=\S+ pfn=0x([0-9a-f]+)(?: order=(\d+))?(?: migratetype=(-?\d+))?"
    rb"(?: gfp_flags=(\S+))?(?: percpu_refill=(-?\d+))?$|.*$)|^.*$", re.M)
_G_COMM, _G_PID, _G_CPU, _G_TS, _G_EVENT, _G_PFN, _G_ORDER, _G_MT, _G_GFP, _G_REFILL = range(10)

_MISSING, _BAD = -1, -2
# presence bits (order, migratetype, gfp, percpu_refill) each fast kind must show
_SHAPE = np.full(256, -1, np.int64)
_SHAPE[MM_PAGE_ALLOC] = 0b0111
_SHAPE[MM_PAGE_FREE] = 0b0001
_SHAPE[MM_PAGE_FREE_BATCHED] = 0b0001
_SHAPE[MM_PAGE_ALLOC_ZONE_LOCKED] = 0b1011
_SHAPE[MM_PAGE_PCPU_DRAIN] = 0b0011


class _Cache(dict):
    """bytes -> parsed value, filled on first sight (cleared when it grows too big)."""

    def __init__(self, conv, limit=1 << 16):
        super().__init__()
        self.conv, self.limit = conv, limit

    def __missing__(self, key):
        if len(self) >= self.limit:
            self.clear()
        val = self[key] = self.conv(key)
        return val


def _small_int(lo, hi):
    def conv(b):
        if not b:
            return _MISSING
        try:
            x = int(b)
        except ValueError:
            return _BAD
        return x if lo <= x <= hi else _BAD
    return conv


def _fast_gfp(b):
    if not b:
        return _MISSING
    try:
        return parse_gfp(b.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return _BAD


def _fast_kind(b):
    return KIND_BY_NAME.get(b.decode("ascii", "replace"), OTHER_EVENT)


def _hex_or_missing(b):
    return int(b, 16) if b else _MISSING


def _float_or_nan(b):
    return float(b) if b else np.nan


@dataclass
class TraceBatch:
    """``events`` (EVENT_DTYPE rows), ``records`` (objects of rows with aux >= 0),
    ``comms`` (comm id -> name, shared by all batches of a reader)."""
    events: np.ndarray
    records: list
    comms: list

    def __len__(self):
        return len(self.events)

    def kmem(self) -> np.ndarray:
        """Only the kmem rows (kinds 0..5)."""
        return self.events[self.events["kind"] <= MM_PAGE_FREE_BATCHED]

    def comm_of(self, i: int) -> str:
        return self.comms[self.events["comm"][i]]


def concat_batches(batches: list) -> TraceBatch:
    """Join batches (of one reader) into one, re-indexing ``aux``."""
    if not batches:
        return TraceBatch(np.empty(0, EVENT_DTYPE), [], [])
    parts, records = [], []
    for b in batches:
        ev = b.events
        if b.records:
            ev = ev.copy()
            sel = ev["aux"] >= 0
            ev["aux"][sel] += len(records)
            records.extend(b.records)
        parts.append(ev)
    return TraceBatch(np.concatenate(parts), records, batches[0].comms)


def _slice_batch(b: TraceBatch, lo: int, hi: int) -> TraceBatch:
    ev = b.events[lo:hi]
    if not b.records:
        return TraceBatch(ev, [], b.comms)
    aux = ev["aux"]
    sel = aux >= 0
    if not sel.any():
        return TraceBatch(ev, [], b.comms)
    first, last = int(aux[sel][0]), int(aux[sel][-1])
    ev = ev.copy()
    ev["aux"][sel] -= first
    return TraceBatch(ev, b.records[first:last + 1], b.comms)


class TraceReader:
    """Read one trace file; see the module docstring.

    ``errors`` (Counter reason -> lines skipped, lenient mode), ``error_samples``
    (first messages), ``event_counts`` (event name -> lines), ``lines`` (lines
    read) and ``comms`` are filled while reading.
    """

    def __init__(self, path, *, lenient: bool = False, progress: bool = False,
                 keep_other: bool = True, batch_size: int = 1 << 16,
                 chunk_bytes: int = 4 << 20, max_lines: int | None = None):
        self.path = os.fspath(path)
        self.lenient, self.progress, self.keep_other = lenient, progress, keep_other
        self.batch_size, self.chunk_bytes, self.max_lines = batch_size, chunk_bytes, max_lines
        self.errors: Counter = Counter()
        self.error_samples: list[str] = []
        self.event_counts: Counter = Counter()
        self.lines = 0
        self.comms: list[str] = []
        self._comm_id: dict[str, int] = {}
        self._c_comm = _Cache(self._comm_bytes)
        self._c_pid = _Cache(_small_int(0, (1 << 31) - 1))
        self._c_cpu = _Cache(_small_int(0, (1 << 16) - 1))
        self._c_order = _Cache(_small_int(0, 63))
        self._c_i8 = _Cache(_small_int(-128, 127))
        self._c_gfp = _Cache(_fast_gfp)
        self._c_kind = _Cache(_fast_kind)

    # -- comm table ---------------------------------------------------------
    def _comm(self, name: str) -> int:
        i = self._comm_id.get(name)
        if i is None:
            i = self._comm_id[name] = len(self.comms)
            self.comms.append(name)
        return i

    def _comm_bytes(self, b: bytes) -> int:
        return self._comm(b.decode("utf-8", "replace"))

    # -- errors -------------------------------------------------------------
    def _error(self, e: TraceFormatError):
        if not self.lenient:
            raise e
        self.errors[e.reason] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(str(e))

    # -- raw chunks ---------------------------------------------------------
    def _chunks(self) -> Iterator[bytes]:
        """Decompressed text in pieces ending at a line end, read in a helper thread."""
        src = _Decompressed(self.path)
        q: queue.Queue = queue.Queue(maxsize=4)
        stop = threading.Event()

        def produce():
            try:
                while not stop.is_set():
                    data = src.read(self.chunk_bytes)
                    item = (data, src.compressed_pos())
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if not data:
                        return
            except BaseException as e:          # handed to the consumer
                q.put((e, 0))

        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=os.path.getsize(self.path), unit="B", unit_scale=True,
                       desc=os.path.basename(self.path))
        th = threading.Thread(target=produce, name="trace-reader", daemon=True)
        th.start()
        carry = b""
        try:
            while True:
                data, pos = q.get()
                if isinstance(data, BaseException):
                    raise data
                if bar is not None:
                    bar.update(pos - bar.n)
                if not data:
                    break
                buf = carry + data if carry else data
                cut = buf.rfind(b"\n")
                if cut < 0:
                    carry = buf
                    continue
                carry = buf[cut + 1:]
                yield buf[:cut]
            if carry:
                yield carry
        finally:
            stop.set()
            while th.is_alive():
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            th.join()
            src.close()
            if bar is not None:
                bar.close()

    def _limited_chunks(self) -> Iterator[tuple[bytes, int]]:
        """(chunk, first line number), honouring ``max_lines``."""
        line = 1
        chunks = self._chunks()
        try:
            for chunk in chunks:
                n = chunk.count(b"\n") + 1
                if self.max_lines is not None and line - 1 + n > self.max_lines:
                    keep = self.max_lines - (line - 1)
                    if keep > 0:
                        chunk = b"\n".join(chunk.split(b"\n", keep)[:keep])
                        yield chunk, line
                        line += keep
                    break
                yield chunk, line
                line += n
        finally:
            chunks.close()          # stops the reader thread at once
        self.lines = line - 1

    # -- fast path ----------------------------------------------------------
    def _parse_chunk(self, chunk: bytes, first: int) -> TraceBatch:
        rows = _FAST.findall(chunk)
        n = len(rows)
        if n != chunk.count(b"\n") + 1:          # cannot happen; stay correct anyway
            return self._slow_chunk(chunk.split(b"\n"), first)
        col = lambda g: map(itemgetter(g), rows)  # noqa: E731
        kind = np.fromiter(map(self._c_kind.__getitem__, col(_G_EVENT)), np.int64, n)
        order = np.fromiter(map(self._c_order.__getitem__, col(_G_ORDER)), np.int64, n)
        mt = np.fromiter(map(self._c_i8.__getitem__, col(_G_MT)), np.int64, n)
        refill = np.fromiter(map(self._c_i8.__getitem__, col(_G_REFILL)), np.int64, n)
        gfp = np.fromiter(map(self._c_gfp.__getitem__, col(_G_GFP)), np.int64, n)
        pid = np.fromiter(map(self._c_pid.__getitem__, col(_G_PID)), np.int64, n)
        cpu = np.fromiter(map(self._c_cpu.__getitem__, col(_G_CPU)), np.int64, n)
        comm = np.fromiter(map(self._c_comm.__getitem__, col(_G_COMM)), np.int64, n)
        try:        # every line has a header in nearly every chunk
            ts = np.fromiter(map(float, col(_G_TS)), np.float64, n)
        except ValueError:
            ts = np.fromiter(map(_float_or_nan, col(_G_TS)), np.float64, n)
        try:        # ... and is a kmem event in most chunks
            pfn = np.fromiter(map(int, col(_G_PFN), repeat(16)), np.int64, n)
        except (ValueError, OverflowError):
            pfn = np.array([x if x < 1 << 63 else _BAD
                            for x in map(_hex_or_missing, col(_G_PFN))], np.int64)
        shape = ((order != _MISSING) | ((mt != _MISSING) << 1) | ((gfp != _MISSING) << 2)
                 | ((refill != _MISSING) << 3))
        bad = ((order == _BAD) | (mt == _BAD) | (gfp == _BAD) | (refill == _BAD)
               | (pid < 0) | (cpu < 0) | (pfn < 0))
        ok = (_SHAPE[kind] == shape) & ~bad & ~((kind == MM_PAGE_ALLOC) & (pfn == 0))

        ev = np.empty(n, EVENT_DTYPE)
        ev["kind"] = kind
        ev["cpu"] = cpu
        ev["pid"] = pid
        ev["comm"] = comm
        ev["ts"] = ts
        ev["line"] = np.arange(first, first + n)
        ev["pfn"] = pfn
        ev["order"] = order
        ev["migratetype"] = mt
        ev["gfp"] = np.maximum(gfp, 0)
        ev["percpu_refill"] = refill
        ev["failed"] = False
        for name in ("fallback_order", "fallback_migratetype", "pageblock_order",
                     "fragmenting", "change_ownership", "aux"):
            ev[name] = -1
        records: list = []
        if not ok.all():
            ev, records = self._fix_rows(ev, chunk, first, np.flatnonzero(~ok))
        self._count(ev, records)
        return TraceBatch(ev, records, self.comms)

    def _fix_rows(self, ev, chunk, first, idx):
        """Re-parse the rows the fast pattern did not vouch for with parse_line."""
        lines = chunk.split(b"\n")
        keep = np.ones(len(ev), bool)
        records = []
        for i in idx:
            lineno = first + int(i)
            try:
                rec = parse_line(lines[i].decode("utf-8", "replace"), lineno, self.path)
            except TraceFormatError as e:
                self._error(e)
                rec = None
            if rec is None or (isinstance(rec, OtherEvent) and not self.keep_other):
                keep[i] = False
                if isinstance(rec, OtherEvent):
                    self.event_counts[rec.event] += 1
                continue
            self._fill_row(ev[i:i + 1], rec, records)
        if not keep.all():
            ev = ev[keep]
        return ev, records

    def _fill_row(self, row, rec: TraceEvent, records: list):
        row["kind"] = rec.kind
        row["cpu"] = rec.cpu
        row["pid"] = rec.pid
        row["comm"] = self._comm(rec.comm)
        row["ts"] = rec.ts
        row["pfn"] = getattr(rec, "pfn", -1)
        row["gfp"] = getattr(rec, "gfp_flags", 0)
        row["failed"] = getattr(rec, "failed", False)
        for name in ("order", "migratetype", "percpu_refill", "fallback_order",
                     "fallback_migratetype", "pageblock_order", "fragmenting",
                     "change_ownership"):
            row[name] = getattr(rec, name, -1)
        if isinstance(rec, MmPageAllocExtfrag):
            row["order"] = rec.alloc_order
            row["migratetype"] = rec.alloc_migratetype
        row["aux"] = -1
        if rec.kind >= TRACING_MARK_WRITE:
            row["aux"] = len(records)
            records.append(rec)

    def _slow_chunk(self, lines, first) -> TraceBatch:
        ev = np.zeros(len(lines), EVENT_DTYPE)
        ev["line"] = np.arange(first, first + len(lines))
        ev, records = self._fix_rows(ev, b"\n".join(lines), first, np.arange(len(lines)))
        self._count(ev, records)
        return TraceBatch(ev, records, self.comms)

    def _count(self, ev, records):
        counts = np.bincount(ev["kind"], minlength=9)
        for k in range(TRACING_MARK_WRITE + 1):
            if counts[k]:
                self.event_counts[KIND_NAMES[k]] += int(counts[k])
        for rec in records:
            if isinstance(rec, OtherEvent):
                self.event_counts[rec.event] += 1
            elif isinstance(rec, LostEvents):
                self.event_counts["lost"] += 1

    # -- public iteration ---------------------------------------------------
    def batches(self) -> Iterator[TraceBatch]:
        """Batches of exactly ``batch_size`` rows (the last one shorter)."""
        chunks = self._limited_chunks()
        try:
            yield from self._rebatch(chunks)
        finally:
            chunks.close()

    def _rebatch(self, chunks) -> Iterator[TraceBatch]:
        pending: list[TraceBatch] = []
        have = 0
        for chunk, first in chunks:
            b = self._parse_chunk(chunk, first)
            if not len(b):
                continue
            pending.append(b)
            have += len(b)
            if have < self.batch_size:
                continue
            joined = concat_batches(pending) if len(pending) > 1 else pending[0]
            lo = 0
            while have - lo >= self.batch_size:
                yield _slice_batch(joined, lo, lo + self.batch_size)
                lo += self.batch_size
            pending = [_slice_batch(joined, lo, have)] if lo < have else []
            have -= lo
        if have:
            yield concat_batches(pending) if len(pending) > 1 else pending[0]

    __iter__ = batches

    def records(self) -> Iterator[TraceEvent]:
        """Every line as a record object (markers, other events, lost lines too)."""
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=os.path.getsize(self.path), unit="B", unit_scale=True,
                       desc=os.path.basename(self.path))
        lineno = 0
        try:
            with open_trace(self.path, "rb") as f:
                for raw in f:
                    if self.max_lines is not None and lineno >= self.max_lines:
                        break
                    lineno += 1
                    if bar is not None and not lineno & 0xFFFF:
                        bar.update(f.raw.compressed_pos() - bar.n)
                    rec = self._record(raw, lineno)
                    if rec is not None:
                        yield rec
            self.lines = lineno
        finally:
            if bar is not None:
                bar.close()

    def _record(self, raw: bytes, lineno: int):
        try:
            rec = parse_line(raw.decode("utf-8", "replace"), lineno, self.path)
        except TraceFormatError as e:
            self._error(e)
            return None
        if rec is None:
            return None
        self.event_counts[rec.event if isinstance(rec, OtherEvent) else rec.name] += 1
        if isinstance(rec, OtherEvent) and not self.keep_other:
            return None
        return rec


def read_batches(path, **kw) -> Iterator[TraceBatch]:
    """Shorthand for ``TraceReader(path, **kw).batches()``."""
    return TraceReader(path, **kw).batches()


def read_trace(path, **kw) -> TraceBatch:
    """Read a whole file into one :class:`TraceBatch` (56 bytes per row)."""
    return concat_batches(list(TraceReader(path, **kw).batches()))
