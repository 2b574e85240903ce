"""Progress lines on stderr while numba compiles the machine model.

``install()`` registers a listener for numba's "numba:compile" event, which
numba fires only for a real compile, never for a cache load: a warm run pays
one list append.  From the first compile on, a line names the function being
compiled and the count against COMPILE_BUDGET (at most every 10 s, and at
least every 20 s while a compile runs); a last line gives the total.
"""
import sys
import threading
import time

__all__ = ["COMPILE_BUDGET", "install"]

#: compiled specialisations (function x signature) of spbsim's own code that
#: the default scenario needs (its 1 GB source included); the count shown while
#: compiling, the limit of tests/test_compile_budget.py, quoted in
#: docs/performance.md.  Raise it only on purpose.
COMPILE_BUDGET = 143

_EVERY_S = 10.0         # at most one line per this many seconds
_QUIET_S = 20.0         # a line at the latest after this many seconds
_IDLE_S = 2.0           # no compile for this long ends the compile phase

_state = None


def _say(text):
    try:
        from tqdm import tqdm
        tqdm.write(text, file=sys.stderr)      # above any progress bar
    except Exception:                          # pragma: no cover - tqdm is a dependency
        print(text, file=sys.stderr, flush=True)


def _fmt(s):
    s = int(s)
    return f"{s // 60}:{s % 60:02d}"


class _Progress:
    def __init__(self, expected):
        self.expected = expected
        self.lock = threading.Lock()
        self.stack = []            # names of the compiles in progress, innermost last
        self.started = 0           # compiles started since install()
        self.phase_from = 0        # self.started at the start of this compile phase
        self.t0 = None             # start of the current compile phase
        self.last_line = 0.0
        self.last_end = 0.0
        self.thread = None

    def _line(self, now, what):
        n = self.started
        total = f"/~{self.expected}" if self.expected and n <= self.expected else ""
        _say(f"spbsim: compiling {n}{total} ({_fmt(now - self.t0)}): {what}")
        self.last_line = now

    def start(self, name):
        now = time.monotonic()
        with self.lock:
            if self.t0 is None:
                self.t0 = now
                self.phase_from = self.started
                self.last_line = 0.0
                if self.thread is None:
                    self.thread = threading.Thread(target=self._watch, daemon=True,
                                                   name="spbsim-compile-progress")
                    self.thread.start()
            self.stack.append(name)
            self.started += 1
            if now - self.last_line >= _EVERY_S:
                self._line(now, name)

    def end(self):
        with self.lock:
            if self.stack:
                self.stack.pop()
            self.last_end = time.monotonic()

    def _watch(self):
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self.lock:
                if self.t0 is None:
                    self.thread = None
                    return
                if self.stack:
                    if now - self.last_line >= _QUIET_S:
                        self._line(now, self.stack[-1] + " (still)")
                elif now - self.last_end >= _IDLE_S:
                    n = self.started - self.phase_from
                    _say(f"spbsim: compiled {n} functions in {_fmt(self.last_end - self.t0)}"
                         " (cached for the next runs)")
                    self.t0 = None
                    self.thread = None
                    return


def install(expected=None):
    """Show compile progress on stderr from now on (idempotent; cheap when
    nothing is compiled).  expected: the count to show, COMPILE_BUDGET by default."""
    global _state
    if _state is not None:
        return _state
    from numba.core import event

    prog = _Progress(COMPILE_BUDGET if expected is None else expected)

    class _Listener(event.Listener):
        def on_start(self, e):
            f = e.data["dispatcher"].py_func
            prog.start(f.__name__)

        def on_end(self, e):
            prog.end()

    event.register("numba:compile", _Listener())
    _state = prog
    return prog
