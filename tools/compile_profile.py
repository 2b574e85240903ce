"""Compile time per numba function of one spbsim command, from a cold cache.

    python tools/compile_profile.py [--top 15] [--json f] [-- run devvm-256g --duration 5s]

Runs the command (default: a 5 s default run) with NUMBA_CACHE_DIR set to a
new temporary directory, listening to numba's "numba:compile" events (real
compiles only, never cache loads), and prints per function its signatures,
own compile seconds (wall and cpu, callees' compiles excluded) and share;
"entry s": compiled from Python, the time including its callees.  A last
line splits the compile's cpu time into LLVM's function passes, its module
passes (after the callees are linked in), machine code, and the rest
(numba's own work: bytecode, type inference, inlining, lowering to LLVM IR).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict

DEFAULT_ARGV = ["run", "--duration", "5s"]


def _name(disp):
    f = disp.py_func
    return f"{f.__module__}.{f.__qualname__}"


class CompileProfile:
    """A numba:compile listener: one record per compiled specialisation."""

    def __init__(self):
        self.records = []      # (name, args, self_s, incl_s, depth, self_cpu_s)
        self._stack = []       # [name, args, t0, child_s, cpu0, child_cpu_s]

    def install(self):
        from numba.core import event

        prof = self

        class _L(event.Listener):
            def on_start(self, e):
                d = e.data
                prof._stack.append([_name(d["dispatcher"]), str(d["args"]),
                                    time.perf_counter(), 0.0, time.process_time(), 0.0])

            def on_end(self, e):
                name, args, t0, child, c0, child_cpu = prof._stack.pop()
                incl = time.perf_counter() - t0
                cpu = time.process_time() - c0
                if prof._stack:
                    prof._stack[-1][3] += incl
                    prof._stack[-1][5] += cpu
                prof.records.append((name, args, incl - child, incl, len(prof._stack),
                                     cpu - child_cpu))

        self._listener = _L()
        event.register("numba:compile", self._listener)
        return self

    def table(self):
        """Rows (name, n_signatures, self_s, entry_incl_s or None, self_cpu_s), by self_s."""
        by = defaultdict(lambda: [set(), 0.0, None, 0.0])
        for name, args, self_s, incl, depth, cpu in self.records:
            r = by[name]
            r[0].add(args)
            r[1] += self_s
            r[3] += cpu
            if depth == 0:
                r[2] = (r[2] or 0.0) + incl
        rows = [(n, len(s), t, e, c) for n, (s, t, e, c) in by.items()]
        return sorted(rows, key=lambda r: -r[2])


class LLVMPhases:
    """Cpu seconds in each LLVM phase of numba's CPUCodeLibrary."""

    PHASES = (("CPUCodeLibrary", "_optimize_functions", "function passes"),
              ("CPUCodeLibrary", "_optimize_final_module", "module passes"),
              ("JITCodeLibrary", "_finalize_specific", "machine code"))

    def __init__(self):
        self.cpu = defaultdict(float)

    def install(self):
        from numba.core import codegen

        for cls_name, meth, label in self.PHASES:
            cls = getattr(codegen, cls_name)
            orig = getattr(cls, meth)

            def timed(lib, *a, _orig=orig, _label=label, **k):
                c0 = time.process_time()
                try:
                    return _orig(lib, *a, **k)
                finally:
                    self.cpu[_label] += time.process_time() - c0

            setattr(cls, meth, timed)
        return self


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=0, help="print only the N slowest (0: all)")
    ap.add_argument("--json", help="also write the records to this file")
    ap.add_argument("--keep-cache", action="store_true", help="keep the temporary cache")
    ap.add_argument("cmd", nargs="*", help="spbsim arguments (after --); default: "
                    + " ".join(DEFAULT_ARGV))
    a = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="spbsim-cold-")
    os.environ["NUMBA_CACHE_DIR"] = cache
    cmd = a.cmd or DEFAULT_ARGV + ["--out", os.path.join(cache, "run")]
    if "numba" in sys.modules:
        sys.exit("compile_profile: numba was imported before NUMBA_CACHE_DIR was set")
    prof = CompileProfile().install()
    phases = LLVMPhases().install()
    from spbsim.cli import main as spbsim_main
    t0 = time.perf_counter()
    rc = 0
    try:
        spbsim_main(cmd)
    except SystemExit as e:
        rc = e.code or 0
    wall = time.perf_counter() - t0
    rows = prof.table()
    total = sum(r[2] for r in rows)
    out = sys.stdout
    print(f"\ncompile profile of `spbsim {' '.join(cmd)}` (exit {rc}), "
          f"load average {os.getloadavg()[0]:.2f}", file=out)
    cpu = sum(r[4] for r in rows)
    print(f"{len(prof.records)} compiled specialisations of {len(rows)} functions, "
          f"{total:.1f} s compiling ({cpu:.1f} s cpu), {wall:.1f} s wall in all", file=out)
    print(f"{'function':60s} {'sigs':>4s} {'self s':>8s} {'cpu s':>7s} {'share':>6s} "
          f"{'entry s':>8s}", file=out)
    for name, nsig, t, entry, c in rows[:a.top or None]:
        e = f"{entry:8.1f}" if entry is not None else ""
        print(f"{name[:60]:60s} {nsig:4d} {t:8.2f} {c:7.2f} {100 * t / (total or 1):5.1f}% {e}",
              file=out)
    llvm = dict(phases.cpu)
    if llvm:
        print("compile cpu: " + ", ".join(f"{k} {v:.1f} s" for k, v in llvm.items())
              + f", the rest (numba) {cpu - sum(llvm.values()):.1f} s", file=out)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"argv": cmd, "wall_s": wall, "llvm_cpu_s": llvm,
                       "loadavg": os.getloadavg(),
                       "records": [dict(zip(("function", "args", "self_s", "incl_s", "depth",
                                             "self_cpu_s"), r))
                                   for r in prof.records]}, f, indent=1)
    if not a.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    else:
        print(f"cache kept in {cache}", file=out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
