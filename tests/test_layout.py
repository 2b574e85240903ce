"""The package's shape: no import cycle inside spbsim (imports inside
functions included), and no block of six or more near-identical lines in
the allocator model (spbsim/mm)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "spbsim"


def _modules():
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def import_graph():
    """module -> spbsim modules it imports anywhere in its body."""
    mods = _modules()
    graph = {}
    for name, f in mods.items():
        pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    full = ".".join(base + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                for a in node.names:
                    sub = f"{full}.{a.name}"
                    deps.add(sub if sub in mods else full)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def import_cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_sees_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_reads_relative_and_function_level_imports():
    g = import_graph()
    assert "spbsim.mm.const" in g["spbsim.mm.page_alloc"]
    assert "spbsim.trace.whatif" in g["spbsim.cli"] or "spbsim.trace.validate" in g["spbsim.cli"]


def test_no_import_cycle_inside_spbsim():
    """No import cycle anywhere in spbsim, the allocator model included: the
    machine state is allocated by mm.mm_init (not mm.state, which the SPB
    lists import), and the SPB worker allocates its migration targets
    through mm.freelist (not mm.page_alloc, whose slow path calls the
    worker's evacuation)."""
    assert import_cycles(import_graph()) == []


def test_no_duplicated_blocks_in_the_allocator_model():
    """pylint's duplicate-code check (R0801), six similar lines or more."""
    pytest.importorskip("pylint")
    r = subprocess.run([sys.executable, "-m", "pylint", "--disable=all",
                        "--enable=duplicate-code", "--min-similarity-lines=6",
                        "--score=n", str(PKG / "mm")],
                       capture_output=True, text=True, timeout=600)
    assert "R0801" not in r.stdout, r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_compiled_code_outside_mm_is_cached_by_the_modules_it_imports():
    """numba stamps a cached function with its own file only, but compiled
    code bakes in the constants and compiled callees of the modules it
    imports: the engine's step loop reads the source-kind codes of
    engine/state.py (declared in workload/kinds.py), the what-if replay the
    event codes of trace/ftrace.py.
    Each such function is cached in a directory named after spbsim/mm and
    those files, so editing engine/state.py cannot leave a stale step loop
    behind (before, only spbsim/mm named the directory)."""
    from spbsim.engine import step
    from spbsim.mm import jit
    from spbsim.mm import pcp
    eng = jit.compiled_closure(PKG / "engine" / "step.py")
    assert {p.relative_to(PKG).as_posix() for p in eng} == {"engine/step.py", "engine/state.py",
                                                            "workload/kinds.py"}
    wi = {p.relative_to(PKG).as_posix() for p in jit.compiled_closure(PKG / "trace" / "whatif.py")}
    assert {"trace/whatif.py", "trace/ftrace.py", "errors.py"} <= wi
    assert jit.compiled_closure(PKG / "mm" / "pcp.py") == frozenset()
    where = step.run_requests._cache._cache_path
    assert where.startswith(jit.cache_dir(eng)) and jit.cache_dir(eng) != jit.cache_dir()
    assert pcp.rmqueue_bulk._cache._cache_path.startswith(jit.cache_dir())


def test_module_docstrings_are_short():
    """A module says in at most ten lines what it is; the rest is in docs/."""
    long = []
    for f in PKG.rglob("*.py"):
        if "__numba_cache__" in f.parts:
            continue
        doc = ast.get_docstring(ast.parse(f.read_text(), str(f)))
        if doc and len(doc.splitlines()) > 10:
            long.append(f"{f.relative_to(PKG)}: {len(doc.splitlines())} lines")
    assert not long, long


def test_code_cites_kernel_functions_not_issue_numbers():
    import re
    pat = re.compile(r"\b(issue|ticket)s?\s*#?\d+|\bGH-\d+", re.I)
    hits = [f"{f.relative_to(PKG)}:{i}" for f in PKG.rglob("*.py") if "__numba_cache__" not in f.parts
            for i, line in enumerate(f.read_text().splitlines(), 1) if pat.search(line)]
    assert not hits, hits
