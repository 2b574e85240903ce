"""tools/whatif_timeline.py: its fragmentation score is the model's
fragmentation_score_node(), and its kernel rows are the recording's own
buddyinfo and zoneinfo."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from recording import PCP, ZONES, nr_free_for, write_recording

from spbsim import Machine
from spbsim.mm.compaction import fragmentation_score_node
from spbsim.mm.gfp import GFP_HIGHUSER_MOVABLE
from spbsim.mm.state import ZSTAT

TOOL = Path(__file__).resolve().parent.parent / "tools" / "whatif_timeline.py"


def _tool():
    spec = importlib.util.spec_from_file_location("whatif_timeline", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_score_is_the_models_fragmentation_score_node():
    tool = _tool()
    m = Machine(memory="1G", low_memory="512M", cpus=2)
    # most of memory in order-0 blocks, then every other one freed: a
    # score near 100, with a few order-9 blocks left free
    n = 240_000
    got = m.run_ops(np.zeros(n, np.int64), GFP_HIGHUSER_MOVABLE)
    got = got[got >= 0]
    m.run_ops(np.zeros(len(got[::2]), np.int64), 0, pfns=got[::2])
    mem = m.mem
    zones = {n: mem.nr_free[z].tolist() for n, z in zip(m.zone_names(), m.populated_zones())}
    present = {n: int(mem.zstat[z, ZSTAT["present"]])
               for n, z in zip(m.zone_names(), m.populated_zones())}
    assert tool.node_score(zones, present) == int(fragmentation_score_node(mem))
    assert 50 < tool.node_score(zones, present) <= 100


def test_kernel_rows_are_the_recordings(tmp_path):
    rec = write_recording(tmp_path / "rec")
    r = subprocess.run([sys.executable, str(TOOL), str(rec), "--from", "0", "--to", "1e6",
                        "--every", "0.5"], capture_output=True, text=True, timeout=1800, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    kernel = [line for line in r.stdout.splitlines() if line.split()[:1] == ["kernel"]]
    assert len(kernel) == 3                      # start, periodic-0001, end
    tool = _tool()
    seq = 1                                      # the start snapshot
    nr = nr_free_for(seq)
    present = {z: ZONES[z][2] for z in nr}
    cells = kernel[0].split()
    assert int(cells[1]) == tool.node_score(nr, present)
    normal = cells[cells.index("Normal:") + 1:]
    assert int(normal[0]) == sum(c << o for o, c in enumerate(nr["Normal"]))
    assert int(normal[2]) == sum(PCP["Normal"])
    assert int(normal[4]) == nr["Normal"][9] + 2 * nr["Normal"][10]


def test_a_missing_recording_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "none"), "--from", "0",
                        "--to", "1"], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_malformed_trace_line_is_named_with_its_line_and_field(tmp_path):
    rec = write_recording(tmp_path / "rec")
    trace = rec / "trace.txt"
    lines = trace.read_text().splitlines()
    n = next(i for i, x in enumerate(lines) if "mm_page_alloc:" in x) + 1
    lines[n - 1] = lines[n - 1].replace("pfn=0x", "pfn=0xzz")
    trace.write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, str(TOOL), str(rec), "--from", "0", "--to", "1e6"],
                       capture_output=True, text=True, timeout=1800, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and f"trace.txt:{n}: mm_page_alloc: field 'pfn'" in err[0], err
