"""How numba compiles spbsim's functions: some of numba's internals replaced
for spbsim's code only (stack slots, calls between compiled functions,
inlining at numba-IR level, wrappers for calls from Python).  The generated
code computes what numba's would; a cold compile takes a quarter of the cpu.

Details: docs/model.md ("Module notes", `spbsim.mm.jit`).
"""
import copy
import hashlib
import importlib
import inspect
import os
import pickle
import sys
import time
import uuid
import warnings
from collections import defaultdict
from pathlib import Path

import numba
from numba.core import (
    base,
    bytecode,
    caching,
    codegen,
    dispatcher,
    inline_closurecall,
    ir,
    lowering,
)
from numba.core.analysis import (
    compute_cfg_from_blocks,
    compute_use_defs,
    must_use_alloca,
)
from numba.core.compiler_lock import global_compiler_lock

try:
    import fcntl
except ImportError:         # not on Windows: no lock, each process compiles
    fcntl = None


def _setting(name, default, parse, expected):
    """A number >= 0 from $name (``default`` if unset); bad input: one line
    on stderr, exit 2."""
    text = os.environ.get(name, default)
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not value >= 0:
        print(f"spbsim: {name}: expected {expected}, got {text!r}", file=sys.stderr)
        sys.exit(2)
    return value


# A compiled spbsim callee with at least this many basic blocks is called
# where it is loaded, not linked into each caller (_user_function); 0 links
# every callee into every caller, as numba does.
CALL_MIN_BLOCKS = _setting("SPBSIM_CALL_MIN_BLOCKS", "16", int,
                           "a whole number of basic blocks (0 = link every callee)")
PACKAGES = {"spbsim"}       # the packages whose functions these rules compile


def _spbsim_function(func):
    return (getattr(func, "__module__", None) or "").split(".")[0] in PACKAGES


def _ssa_variables(lower):
    """The variables of a function that can be kept as SSA values instead of
    stack slots: assigned by one statement, not in a stack slot for another
    reason, and read (or deleted) only in blocks that the assigning block
    dominates, never in that block before the assignment (a loop)."""
    blocks = lower.func_ir.blocks
    ud = compute_use_defs(blocks)
    def_blocks, use_blocks, assigns = defaultdict(set), defaultdict(set), defaultdict(int)
    for b, names in ud.defmap.items():
        for v in names:
            def_blocks[v].add(b)
    for b, names in ud.usemap.items():
        for v in names:
            use_blocks[v].add(b)
    for b, blk in blocks.items():
        for d in blk.find_insts(ir.Del):
            use_blocks[d.value].add(b)
        for a in blk.find_insts(ir.Assign):
            assigns[a.target.name] += 1
    stacked = must_use_alloca(blocks)
    doms = compute_cfg_from_blocks(blocks).dominators()
    out = set()
    for v, bs in def_blocks.items():
        if len(bs) != 1 or assigns[v] != 1 or v in stacked:
            continue
        (d,) = bs
        if d not in use_blocks[v] and all(d in doms[u] for u in use_blocks[v]):
            out.add(v)
    return out


_find_singly_assigned = getattr(lowering.Lower, "_find_singly_assigned_variable", None)


def _find_ssa_variables(self):
    """numba's Lower._find_singly_assigned_variable, widened for spbsim's code.

    numba keeps a variable out of a stack slot only when one block both
    assigns and reads it.  Every other variable gets a slot, the machine
    namedtuple ``m`` too: a struct of ~400 scalars, one slot per inlined
    helper's ``m``, which LLVM's SROA pass then splits field by field: most of
    a cold compile's time.  A variable assigned once in a block that
    dominates its every use holds the same value wherever it is read, so for
    spbsim's functions (compiled without reference counting) it is kept as
    that value.  Same code semantics; docs/performance.md ("Where a cold
    compile's time goes")."""
    _find_singly_assigned(self)
    fid = self.func_ir.func_id
    if (_spbsim_function(fid.func) and not fid.is_generator
            and not self.context.enable_nrt and not self._disable_sroa_like_opt):
        self._singly_assigned_vars |= _ssa_variables(self)


# -- Calls between compiled functions ---------------------------------------
#
# numba links the code of every compiled callee into each caller's module and
# optimizes and compiles it there again, so each entry point carried nearly
# the whole model.  A large spbsim callee is instead declared in the caller and
# resolved by the JIT's linker to the one copy already loaded; the caller's
# cached code records the callees it needs (module, name, argument types,
# symbol), which are loaded before it.

class _StaleCallee(Exception):
    """A cached caller needs a callee symbol that is not loaded (the callee
    was recompiled since): the caller is compiled again."""


def _deps(library):
    d = getattr(library, "_spbsim_callees", None)
    if d is None:
        d = library._spbsim_callees = {}
    return d


def _dispatcher(modname, qualname, load=True):
    """The dispatcher named modname.qualname (its module imported if ``load``,
    else only if already imported), or None."""
    obj = importlib.import_module(modname) if load else sys.modules.get(modname)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, numba.core.dispatcher.Dispatcher) else None


def _called_not_linked(fndesc, library):
    """Whether a call to this compiled callee stays a call to its loaded copy."""
    if (CALL_MIN_BLOCKS <= 0 or fndesc.modname.split(".")[0] not in PACKAGES
            or _dispatcher(fndesc.modname, fndesc.qualname, load=False) is None):
        return False
    fn = library._get_module_for_linking().get_function(fndesc.mangled_name)
    return sum(1 for _ in fn.blocks) >= CALL_MIN_BLOCKS


_user_function_numba = getattr(base, "user_function", None)


def _user_function(fndesc, libs):
    """numba's imputils.user_function (a call from compiled code to a compiled
    function), calling a large spbsim callee where it is loaded instead of
    linking its code into the caller."""
    imp = _user_function_numba(fndesc, libs)
    if len(libs) != 1 or not _called_not_linked(fndesc, libs[0]):
        return imp
    callee = (fndesc.modname, fndesc.qualname, tuple(fndesc.argtypes))

    def call(context, builder, sig, args):
        _deps(context.active_code_library)[fndesc.mangled_name] = callee
        return imp(context, builder, sig, args)

    call.signature = imp.signature
    call.libs = ()
    return call


_add_linking_library = getattr(codegen.CPUCodeLibrary, "add_linking_library", None)


def _add_linking_library_callees(self, library):
    """Linking a library's code links in its calls too: the caller needs
    the same callees loaded."""
    _add_linking_library(self, library)
    callees = getattr(library, "_spbsim_callees", None)
    if callees:
        _deps(self).update(callees)


_serialize = getattr(codegen.CPUCodeLibrary, "serialize_using_object_code", None)
_unserialize = getattr(codegen.CPUCodeLibrary.__dict__.get("_unserialize"), "__func__", None)


def _serialize_callees(self):
    name, kind, data = _serialize(self)
    callees = getattr(self, "_spbsim_callees", None)
    if callees and kind == "object":
        return name, "spbsim-object", (*data, tuple(
            (sym, *callees[sym]) for sym in sorted(callees)))
    return name, kind, data


def _unserialize_callees(cls, codegen_, state):
    name, kind, data = state
    if kind != "spbsim-object":
        return _unserialize(cls, codegen_, state)
    obj, bitcode, callees = data
    for sym, modname, qualname, argtypes in callees:
        try:
            disp = _dispatcher(modname, qualname)
        except ImportError:
            disp = None
        if disp is None:
            raise _StaleCallee(f"{modname}.{qualname}")
        disp.compile(argtypes)
        if not codegen_._engine.is_symbol_defined(sym):
            raise _StaleCallee(sym)
    lib = _unserialize(cls, codegen_, (name, "object", (obj, bitcode)))
    lib._spbsim_callees = {sym: rest for sym, *rest in callees}
    return lib


_load_overload = getattr(caching.Cache, "load_overload", None)
_save_overload = getattr(caching.Cache, "save_overload", None)


def _load_overload_or_recompile(self, sig, target_context):
    try:
        return _load_overload(self, sig, target_context)
    except _StaleCallee:
        return None


# -- One compile per function across processes --------------------------------
#
# Processes that start cold on one cache (test workers, dask workers, a CLI
# run beside them) each compiled every function they needed.  A miss now takes
# an exclusive lock on the function's cache index (fcntl.flock, released by the
# OS if the process dies) and looks again once it holds it: a function another
# process was compiling is loaded, not compiled again.  A process waits at most
# $SPBSIM_COMPILE_LOCK_WAIT seconds (then compiles it too).
COMPILE_LOCK_WAIT = _setting("SPBSIM_COMPILE_LOCK_WAIT", "900", float, "a number of seconds")
_held = {}                  # lock path -> file descriptor, for the compile under way


def _compile_lock(self):
    """Lock the function's cache index; returns the lock's path, or None
    where there is nothing to lock or the lock cannot be had."""
    if fcntl is None or not getattr(self, "_enabled", False) \
            or not _spbsim_function(getattr(self, "_py_func", None)):
        return None
    path = self._cache_file._index_path + ".lock"
    if path in _held:                       # this process compiles it already
        return None
    try:
        self._impl.locator.ensure_cache_path()
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)    # flock needs no write access
    except OSError:
        return None
    deadline = time.monotonic() + COMPILE_LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)
        except OSError:
            os.close(fd)
            return None
    _held[path] = fd
    return path


def _compile_unlock(path):
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)                        # closing the file drops the flock


def _load_overload_once(self, sig, target_context):
    """A cache miss waits for any other process compiling the function, then
    loads what it saved; still a miss: compiled here, the lock held until
    save_overload (or the process's end)."""
    cres = _load_overload_or_recompile(self, sig, target_context)
    if cres is not None:
        return cres
    path = _compile_lock(self)
    if path is None:
        return None
    try:
        cres = _load_overload_or_recompile(self, sig, target_context)
    except BaseException:
        _compile_unlock(path)
        raise
    if cres is not None:
        _compile_unlock(path)
        return cres
    self._spbsim_lock = path
    return None


_dispatcher_compile = getattr(dispatcher.Dispatcher, "compile", None)


def _compile_unlocking_on_error(self, sig):
    """Dispatcher.compile(); a compile that raises (a typing error, say)
    gives its lock back, which otherwise only save_overload() does.  A
    callee's failure unwinds through its callers' compiles: each gives its
    own back.  The call graph has no cycles (spbsim has no recursion), so
    locks are taken caller before callee by every process."""
    try:
        return _dispatcher_compile(self, sig)
    except BaseException:
        cache = getattr(self, "_cache", None)
        path = getattr(cache, "__dict__", {}).pop("_spbsim_lock", None)
        if path is not None:
            _compile_unlock(path)
        raise


def _save_overload_unlock(self, sig, data):
    try:
        _save_overload(self, sig, data)
    finally:
        path = self.__dict__.pop("_spbsim_lock", None)
        if path is not None:
            _compile_unlock(path)


# -- Inlining at numba-IR level ----------------------------------------------
#
# numba's InlineWorker, for every call site of an ``inline="always"`` function,
# translates the callee's bytecode and runs its untyped passes (its own
# inlining included) again, then deep-copies the callee's blocks one by one;
# each block's copy copies the whole variable scope, all of the callee's
# variables, once per block, then copies that copy again.  For spbsim's callees
# the untyped IR is kept per function and the blocks and their scope copied
# once per inlining; the inlined code is the same (each site still gets its own
# names).

_untyped_ir = {}
_run_untyped_passes = getattr(inline_closurecall.InlineWorker, "run_untyped_passes", None)


def _run_untyped_passes_once(self, func, enable_ssa=False):
    """numba's InlineWorker.run_untyped_passes, run once per spbsim function."""
    if not _spbsim_function(func):
        return _run_untyped_passes(self, func, enable_ssa)
    key = (func, enable_ssa, self._compiler_pipeline)
    done = _untyped_ir.get(key)
    if done is None:
        done = _untyped_ir[key] = _run_untyped_passes(self, func, enable_ssa)
    self.flags.enable_ssa = enable_ssa      # as numba's leaves the caller's flags
    out = done.copy()                       # inline_ir copies the blocks again
    out.func_id = bytecode.FunctionIdentity.from_function(func)   # names per site
    return out


class _CopyOnce:
    """The ``copy`` module as inline_closurecall sees it.  During a spbsim
    inline_ir, a variable's scope is copied once (numba's Var.__deepcopy__
    copies it with every block), and a block this inlining copied is not
    copied again (inline_ir copies its copy only to return it; numba's
    inliner ignores it)."""

    made = None                 # during one spbsim inline_ir: ids of its block copies
    scopes = None               # and id(scope) -> that scope's copy

    def deepcopy(self, x, memo=None):
        if self.made is None or not isinstance(x, ir.Block):
            return copy.deepcopy(x, memo)
        if id(x) in self.made:
            return x
        y = copy.deepcopy(x, memo)
        self.made.add(id(y))
        return y

    def __getattr__(self, name):
        return getattr(copy, name)


_copy_once = _CopyOnce()
_var_deepcopy = getattr(ir.Var, "__deepcopy__", None)


def _var_deepcopy_scope_once(self, memo):
    scopes = _copy_once.scopes
    if scopes is None:
        return _var_deepcopy(self, memo)
    scope = scopes.get(id(self.scope))
    if scope is None:
        scope = scopes[id(self.scope)] = copy.deepcopy(self.scope, memo)
    out = ir.Var(scope, self.name, self.loc)
    memo[id(self)] = out
    return out


_inline_ir = getattr(inline_closurecall.InlineWorker, "inline_ir", None)


def _inline_ir_copy_once(self, caller_ir, block, i, callee_ir, *args, **kwargs):
    """numba's InlineWorker.inline_ir, copying a spbsim callee's blocks and
    scope once."""
    if not _spbsim_function(callee_ir.func_id.func) or _copy_once.made is not None:
        return _inline_ir(self, caller_ir, block, i, callee_ir, *args, **kwargs)
    _copy_once.made, _copy_once.scopes = set(), {}
    try:
        return _inline_ir(self, caller_ir, block, i, callee_ir, *args, **kwargs)
    finally:
        _copy_once.made = _copy_once.scopes = None


# -- Wrappers for calls from Python -------------------------------------------
#
# numba compiles with every function a wrapper that converts Python arguments
# (for the machine namedtuple, ~400 fields) so that Python can call it: a
# fifth of a cold compile.  Most of spbsim's functions are only ever called
# from compiled code.  A spbsim function gets its wrapper when Python asks for
# its compile; compiled as a callee it gets none, and should Python call it
# later (tests, tools) the wrapper is built then in a library of its own,
# calling the loaded function, and cached beside it.

_python_compiles = []       # the py_funcs whose compile a call from Python asked for
_customize_flags = getattr(dispatcher._FunctionCompiler, "_customize_flags", None)


def _customize_flags_wrapper(self, flags):
    flags = _customize_flags(self, flags)
    if (_spbsim_function(self.py_func) and not inspect.isgeneratorfunction(self.py_func)
            and not (_python_compiles and _python_compiles[-1] is self.py_func)):
        flags.no_cpython_wrapper = True
    return flags


def _has_python_wrapper(cres):
    """Whether the overload's own code has its wrapper (loaded from the
    cache, a library holds its code in the module kept for linking)."""
    lib = cres.library
    mod = lib._shared_module if lib._shared_module is not None else lib._final_module
    try:
        return not mod.get_function(cres.fndesc.llvm_cpython_wrapper_name).is_declaration
    except NameError:
        return False


_add_overload = getattr(dispatcher._DispatcherBase, "add_overload", None)


def _add_overload_without_wrapper(self, cres):
    """numba's add_overload; an overload without a wrapper is kept for calls
    from compiled code but not offered to Python calls (it has no entry)."""
    if (_spbsim_function(self.py_func) and not cres.objectmode
            and not _has_python_wrapper(cres)):
        self.overloads[tuple(cres.signature.args)] = cres
        return
    _add_overload(self, cres)


def _wrapper_file(disp, cres):
    cache = getattr(disp, "_cache", None)
    path = getattr(cache, "cache_path", None)
    if not path:
        return None
    key = hashlib.sha1(repr((cres.fndesc.mangled_name,
                             cres.library.codegen.magic_tuple())).encode()).hexdigest()
    return Path(path) / f"{cres.fndesc.qualname}-{key[:16]}.nbw"


def _python_wrapper(disp, cres):
    """The Python entry of a compiled overload that has none: loaded from the
    cache or built, then offered to Python calls."""
    ctx, fndesc = cres.target_context, cres.fndesc
    codegen_ = ctx.codegen()
    path = _wrapper_file(disp, cres)
    lib = None
    if path is not None and path.is_file():
        try:
            lib = codegen_.unserialize_library(pickle.loads(path.read_bytes()))
        except (OSError, EOFError, ValueError, RuntimeError, AttributeError, TypeError,
                KeyError, ImportError, pickle.UnpicklingError, _StaleCallee):
            lib = None          # a damaged or foreign file: built anew
    if lib is None:
        lib = codegen_.create_library(f"{fndesc.qualname}.python_wrapper")
        lib.enable_object_caching()
        ctx.create_cpython_wrapper(lib, fndesc, cres.environment, None)
        lib.finalize()
        if path is not None:
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            try:
                tmp.write_bytes(pickle.dumps(lib.serialize_using_object_code()))
                os.replace(tmp, path)
            except OSError:
                pass
    cfunc = ctx.get_executable(lib, fndesc, cres.environment)
    # numba's dispatcher table holds no reference: the overload's does
    if not hasattr(disp, "_spbsim_python_entries"):
        disp._spbsim_python_entries = {}
    disp._spbsim_python_entries[tuple(cres.signature.args)] = cfunc
    disp._insert([a._code for a in cres.signature.args], cfunc, cres.objectmode)
    return cfunc


_compile_for_args = getattr(dispatcher._DispatcherBase, "_compile_for_args", None)


def _compile_for_args_wrapper(self, *args, **kws):
    """numba's _compile_for_args (a call from Python found no entry): the
    overload then gets its wrapper."""
    if not _spbsim_function(self.py_func):
        return _compile_for_args(self, *args, **kws)
    _python_compiles.append(self.py_func)
    try:
        entry = _compile_for_args(self, *args, **kws)
    finally:
        _python_compiles.pop()
    for cres in list(self.overloads.values()):
        if cres.entry_point is entry and not _has_python_wrapper(cres):
            with global_compiler_lock:
                made = getattr(self, "_spbsim_python_entries", {})
                sig = tuple(cres.signature.args)
                # built already (a miss in another thread meanwhile)
                return made[sig] if sig in made else _python_wrapper(self, cres)
    return entry


# numba's function each rule replaces: (owner, attribute, the original, the rule)
_RULES = [
    (lowering.Lower, "_find_singly_assigned_variable", _find_singly_assigned,
     _find_ssa_variables),
    (base, "user_function", _user_function_numba, _user_function),
    (codegen.CPUCodeLibrary, "add_linking_library", _add_linking_library,
     _add_linking_library_callees),
    (codegen.CPUCodeLibrary, "serialize_using_object_code", _serialize, _serialize_callees),
    (codegen.CPUCodeLibrary, "_unserialize", _unserialize, classmethod(_unserialize_callees)),
    (caching.Cache, "load_overload", _load_overload, _load_overload_once),
    (caching.Cache, "save_overload", _save_overload, _save_overload_unlock),
    (dispatcher.Dispatcher, "compile", _dispatcher_compile, _compile_unlocking_on_error),
    (inline_closurecall.InlineWorker, "run_untyped_passes", _run_untyped_passes,
     _run_untyped_passes_once),
    (ir.Var, "__deepcopy__", _var_deepcopy, _var_deepcopy_scope_once),
    (inline_closurecall.InlineWorker, "inline_ir", _inline_ir, _inline_ir_copy_once),
    (inline_closurecall, "copy", getattr(inline_closurecall, "copy", None), _copy_once),
    (dispatcher._FunctionCompiler, "_customize_flags", _customize_flags,
     _customize_flags_wrapper),
    (dispatcher._DispatcherBase, "add_overload", _add_overload,
     _add_overload_without_wrapper),
    (dispatcher._DispatcherBase, "_compile_for_args", _compile_for_args,
     _compile_for_args_wrapper),
]
INSTALLED = all(original is not None for _, _, original, _ in _RULES)


def rules_key():
    """What the rules change in compiled code, for the cache directory's name."""
    return f"/rules{int(INSTALLED)}/call{CALL_MIN_BLOCKS}"


if INSTALLED:
    for owner, name, _, rule in _RULES:
        setattr(owner, name, rule)
else:
    warnings.warn(f"spbsim: numba {numba.__version__} lacks an internal function "
                  "spbsim.mm.jit_numba replaces; compiling as numba does (slower)",
                  stacklevel=2)
