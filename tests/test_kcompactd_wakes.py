"""tools/kcompactd_wakes.py: the kernel's kcompactd wake-ups are read from the
trace (a nap of the recorded kswapd with a traced mm_compaction_wakeup_kcompactd
woke it, one without did not), the model's decision is
kcompactd_node_suitable() on the state the trace gives."""
import importlib.util
from pathlib import Path

from test_agreement import N, recording

TOOL = Path(__file__).resolve().parent.parent / "tools" / "kcompactd_wakes.py"
_K = "         kswapd0-52      [001] .....    {ts:.6f}: {ev}"


def _tool():
    spec = importlib.util.spec_from_file_location("kcompactd_wakes", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _with_kswapd(root):
    """Two naps after the recording's events: one after an order-2 wake
    without a kcompactd wake-up, one after an order-9 wake with one."""
    trace = root / "trace.txt"
    lines = trace.read_text().splitlines()
    t = float(lines[-1].split(": ")[0].split()[-1])
    for dt, ev in [(0.01, "mm_vmscan_kswapd_wake: nid=0 order=2"),
                   (0.03, "mm_vmscan_kswapd_sleep: nid=0"),
                   (0.05, "mm_vmscan_kswapd_wake: nid=0 order=9"),
                   (0.06, "mm_compaction_wakeup_kcompactd: nid=0 order=9 classzone_idx=Movable"),
                   (0.08, "mm_vmscan_kswapd_sleep: nid=0")]:
        lines.append(_K.format(ts=t + dt, ev=ev))
    trace.write_text("\n".join(lines) + "\n")
    return root


def test_high_order_free_blocks_need_no_kcompactd(tmp_path):
    """Normal holds free order-10 blocks, the other zones nothing: no zone
    is below its mark and suited, so the model wakes kcompactd for neither
    order; the kernel traced the order-9 wake-up."""
    root = _with_kswapd(recording(tmp_path, [(N + (k << 10), 10) for k in range(40)], []))
    out, traced = _tool().decisions(root)
    assert traced == 1
    assert [(o, nap, kernel, model) for _, o, nap, kernel, model, _ in out] == [
        (2, 1, False, False), (9, 1, True, False)]


def test_scattered_free_pages_want_kcompactd_for_order_9(tmp_path):
    """Every other page of 100 Normal pageblocks free: plenty of memory, but
    no free buddy above order 0, so both orders wake kcompactd (Normal below
    its MIN mark for the order, suited, and for order 9 fragmented); the
    kernel traced only the order-9 wake-up."""
    free = [(N + (b << 9) + 2 * i, 0) for b in range(100) for i in range(256)]
    root = _with_kswapd(recording(tmp_path, free, []))
    out, _ = _tool().decisions(root)
    assert [(o, kernel, model) for _, o, _, kernel, model, _ in out] == [
        (2, False, True), (9, True, True)]
    normal = next(z for z in out[1][5] if z[0] == 2)
    assert normal[1:3] == (False, True) and normal[3] == 100 * 256


def test_cli_counts_agreement_and_names_a_bad_recording(tmp_path, capsys):
    tool = _tool()
    root = _with_kswapd(recording(tmp_path / "rec", [(N + (k << 10), 10) for k in range(40)], []))
    assert tool.main([str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 kcompactd wake-up requests" in out and "agrees on 1" in out
    assert "order 9  nap  kernel woke  model no wake" in out      # the disagreement's row
    assert tool.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kcompactd_wakes: ") and "missing" in err and "Traceback" not in err
