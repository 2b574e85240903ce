"""Profile spbsim's compiled code with Linux perf.

numba's machine code has no symbols perf can see.  This keeps the object
code numba loads from its cache and writes /tmp/perf-<pid>.map from each object's ELF symbol table (every function
copy at the address it was loaded to) when the work is done.  The work is
the benchmark's stream (``spbsim.bench.run_one``) or a scenario's run:

    perf record -F 999 -o perf.data python tools/perf_profile.py 16G spb:v1 3000000
    perf record -F 999 -o perf.data python tools/perf_profile.py scenario spb-stuck spb:v1 1
    perf report -i perf.data --no-children --sort sym --stdio | head -60

Needs a warm cache (run the same work once first).  Samples count CPU
time, so they hold on a busy machine where wall times do not.  A function
that LLVM inlined into its caller is counted in the caller.
"""
import os
import struct
import sys

from numba.core import codegen

_orig_unserialize = codegen.CPUCodeLibrary._unserialize.__func__


def _keep_object(cls, cg, state):
    lib = _orig_unserialize(cls, cg, state)
    _name, kind, data = state
    if kind == "object":
        lib._perf_object = data[0]
    return lib


codegen.CPUCodeLibrary._unserialize = classmethod(_keep_object)


def _elf_functions(obj):
    """{name: (section index, value, size)} of the defined function symbols
    of an ELF64 little-endian object."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2:
        return {}
    e_shoff, = struct.unpack_from("<Q", obj, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", obj, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", obj, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    out = {}
    for _name, typ, _flags, _addr, off, size, link, _info, _align, entsize in secs:
        if typ != 2:                                   # SHT_SYMTAB
            continue
        stroff = secs[link][4]
        for j in range(size // entsize):
            st_name, st_info, _other, shndx, value, st_size = struct.unpack_from(
                "<IBBHQQ", obj, off + j * entsize)
            if st_info & 0xF != 2 or shndx == 0 or st_size == 0:   # STT_FUNC, defined
                continue
            end = obj.index(b"\0", stroff + st_name)
            out[obj[stroff + st_name:end].decode()] = (shndx, value, st_size)
    return out


def _demangle(sym):
    """numba's Itanium-style names -> 'module.function' (arguments dropped)."""
    if not sym.startswith("_ZN"):
        return sym
    i, parts = 3, []
    while i < len(sym) and sym[i].isdigit():
        j = i
        while sym[j].isdigit():
            j += 1
        n = int(sym[i:j])
        parts.append(sym[j:j + n])
        i = j + n
    return ".".join(p for p in parts if p) or sym


def write_perf_map():
    """Write /tmp/perf-<pid>.map; return the number of function copies."""
    from numba.core.registry import CPUDispatcher
    rows = {}
    for mod in list(sys.modules.values()):
        if not getattr(mod, "__name__", "").startswith("spbsim"):
            continue
        for v in list(vars(mod).values()):
            if not isinstance(v, CPUDispatcher):
                continue
            for cres in v.overloads.values():
                obj = getattr(cres.library, "_perf_object", None)
                entry = cres.fndesc.llvm_func_name
                if obj is None:
                    continue
                syms = _elf_functions(obj)
                if entry not in syms:
                    continue
                try:
                    base = cres.library.get_pointer_to_function(entry) - syms[entry][1]
                except Exception:             # never finalized: no code
                    continue
                shndx = syms[entry][0]
                for name, (sec, value, size) in syms.items():
                    if sec == shndx:
                        rows.setdefault(base + value, (size, _demangle(name)))
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as f:
        for addr in sorted(rows):
            size, name = rows[addr]
            f.write(f"{addr:x} {size:x} {name}\n")
    return len(rows)


def main(what="16G", policy="spb:v1", arg="3000000"):
    """``SIZE POLICY OPS``: the benchmark's stream; ``scenario NAME POLICY
    [SEED]``: a whole run of a scenario, as ``spbsim run`` without writing
    files.  The map is written at the end, when every function used is loaded."""
    if what == "scenario":
        from spbsim.engine.run import Simulation
        from spbsim.scenario import load_scenario
        name, pol, seed = policy, arg, (sys.argv[4] if len(sys.argv) > 4 else "1")
        sc = load_scenario(name, {"scenario.policy": pol, "scenario.seed": seed})
        summary = Simulation(sc).run()
        print(f"{name} {pol} seed {seed}: {summary['wall_s']:.1f} s", file=sys.stderr)
    else:
        from spbsim import bench
        r = bench.run_one(memory=what, n_ops=int(arg), policy=policy)
        print(f"{what} {policy}: {r['events_per_s'] / 1e6:.2f} M events/s, run {r['run_s']} s",
              file=sys.stderr)
    print(f"perf map: {write_perf_map()} function copies", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:4])
