"""tools/perf_profile.py: perf's map names the compiled functions at the
addresses numba loaded them to."""
import os
import re
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "perf_profile.py"


def test_perf_map_names_compiled_functions_at_their_load_addresses():
    # the same work in this process first: the tool's run then loads every
    # function from the cache (the map covers code loaded from the cache)
    from spbsim import bench
    bench.run_one(memory="1G", n_ops=2000, policy="stock")
    p = subprocess.Popen([sys.executable, str(TOOL), "1G", "stock", "2000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _out, err = p.communicate(timeout=1800)
    assert p.returncode == 0, err
    path = Path(f"/tmp/perf-{p.pid}.map")
    try:
        rows = [ln.split(" ", 2) for ln in path.read_text().splitlines()]
    finally:
        os.unlink(path)
    assert int(re.search(r"perf map: (\d+) function copies", err).group(1)) == len(rows) > 10
    names = {r[2] for r in rows}
    assert "spbsim.bench.bench_stream" in names
    assert any(n.startswith("spbsim.mm.") for n in names)
    starts = [int(a, 16) for a, _s, _n in rows]
    assert starts == sorted(set(starts))                 # one row per address, in order
    assert all(int(s, 16) > 0 for _a, s, _n in rows)
