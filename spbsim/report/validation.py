"""Figures and report.html of a ``spbsim validate --out`` directory.

A validate directory holds ``validate.json`` (the whole result) and
``metrics.parquet`` (one row per snapshot and zone, see
spbsim.trace.validate.METRIC_COLUMNS).  One figure per zone shows the
simulation against the kernel over trace time: free pages, free 2 MiB units
in blocks of order >= 9, the L1 distance with its target, pageblocks per
migratetype, per-cpu pages, simulated failures and OOM kills.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..results import ResultsError

__all__ = ["is_validate_dir", "load_validate", "validate_figures", "write_validate_report"]

VALIDATE_JSON = "validate.json"
METRICS = "metrics.parquet"
FIG_DIR = "figures"
_MT_COLOURS = {"Unmovable": "#d32f2f", "Movable": "#4caf50", "Reclaimable": "#ffc107",
               "HighAtomic": "#1e88e5", "Isolate": "#00bcd4", "CMA": "#8e24aa"}


def is_validate_dir(d) -> bool:
    return os.path.isfile(os.path.join(os.fspath(d), VALIDATE_JSON))


def load_validate(d):
    """(result dict, metrics DataFrame); ResultsError naming the file."""
    import pandas as pd
    d = os.fspath(d)
    path = os.path.join(d, VALIDATE_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: unreadable JSON: {e}") from None
    if not isinstance(meta, dict) or "rows" not in meta or "targets" not in meta:
        raise ResultsError(f"{path}: not written by spbsim validate (no 'rows'/'targets')")
    mp = os.path.join(d, METRICS)
    if not os.path.isfile(mp):
        raise ResultsError(f"{mp}: missing (spbsim validate --out writes it)")
    try:
        df = pd.read_parquet(mp)
    except Exception as e:              # pyarrow raises several types
        raise ResultsError(f"{mp}: unreadable parquet: {e}") from None
    for col in ("seq", "ts", "zone", "free_sim", "free_real", "ge9_sim", "ge9_real", "l1_pct"):
        if col not in df.columns:
            raise ResultsError(f"{mp}: column {col!r} missing")
    return meta, df


def _zone_figure(z, zdf, targets, path, title):
    from .figures import plt, save_figure
    t = zdf["ts"].to_numpy(float)
    fig, axes = plt.subplots(3, 2, figsize=(12, 9), sharex=True)
    ax = axes[0, 0]
    ax.plot(t, zdf["free_sim"], "o-", ms=3, label="simulated")
    ax.plot(t, zdf["free_real"], "s--", ms=3, label="kernel")
    ax.set_title("free pages", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    real = zdf["ge9_real"].to_numpy(float)
    tol = np.maximum(targets["ge9_rel"] * real, targets["ge9_abs"])
    ax.fill_between(t, real - tol, real + tol, color="#ccc", alpha=0.6, label="target band")
    ax.plot(t, zdf["ge9_sim"], "o-", ms=3, label="simulated")
    ax.plot(t, real, "s--", ms=3, label="kernel")
    ax.set_title("free 2 MiB units in blocks of order >= 9", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.plot(t, np.minimum(zdf["l1_pct"].to_numpy(float), 1e4), "o-", ms=3, color="#6a1b9a")
    ax.axhline(100 * targets["l1_max"], color="k", ls=":", label="target")
    ax.set_title("buddyinfo L1 distance, % of the kernel's free pages", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    mts = [c[len("pb_real_"):] for c in zdf.columns if c.startswith("pb_real_")]
    for mt in mts:
        col = _MT_COLOURS.get(mt)
        if f"pb_sim_{mt}" in zdf and zdf[f"pb_sim_{mt}"].fillna(0).any() \
                or zdf[f"pb_real_{mt}"].fillna(0).any():
            if f"pb_sim_{mt}" in zdf:
                ax.plot(t, zdf[f"pb_sim_{mt}"], "-", color=col, label=f"{mt} sim")
            ax.plot(t, zdf[f"pb_real_{mt}"], "--", color=col, label=f"{mt} kernel")
    ax.set_title("pageblocks per migratetype (solid sim, dashed kernel)", fontsize=10)
    if mts:
        ax.legend(fontsize=7, ncol=2)
    ax = axes[2, 0]
    if "pcp_sim" in zdf:
        ax.plot(t, zdf["pcp_sim"], "o-", ms=3, label="simulated")
    if "pcp_real" in zdf:
        ax.plot(t, zdf["pcp_real"], "s--", ms=3, label="kernel")
    ax.set_title("pages on per-cpu lists", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2, 1]
    ax.plot(t, zdf["sim_failures"], "o-", ms=3, label="simulated failures (all zones)")
    if "oom_sim" in zdf:
        ax.plot(t, zdf["oom_sim"], "^-", ms=3, label="OOM kills, simulated")
    if "oom_real" in zdf:
        ax.plot(t, zdf["oom_real"], "s--", ms=3, label="OOM kills, kernel")
    ax.set_title("allocations the simulator failed; OOM kills", fontsize=10)
    ax.legend(fontsize=8)
    for a in axes.flat:
        a.grid(alpha=0.3)
    for a in axes[-1]:
        a.set_xlabel("trace time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def validate_figures(d):
    """Write d/figures/validate_<zone>.png/.svg; returns [(png, caption)]."""
    d = os.fspath(d)
    meta, df = load_validate(d)
    out = []
    for z in dict.fromkeys(df["zone"].tolist()):
        zdf = df[df["zone"] == z].sort_values("seq")
        title = f"{meta.get('recording', '?')} [{meta.get('label', '')}], policy " \
                f"{meta.get('policy', '?')}: zone {z}, simulated vs kernel"
        paths = _zone_figure(z, zdf, meta["targets"], os.path.join(d, FIG_DIR,
                                                                   f"validate_{z}"), title)
        out.append((next(p for p in paths if p.endswith(".png")),
                    f"zone {z}: simulation against the kernel over the trace"))
    return out


def write_validate_report(d):
    """d/report.html: summary, figures, the metrics table, notes and machine."""
    from spbsim.trace.validate import format_summary, format_table
    from .page import _e, _img, _page, _pre
    d = os.fspath(d)
    meta, _ = load_validate(d)
    figs = validate_figures(d)
    try:
        summary = format_summary(meta)
        table = format_table(meta)
    except (KeyError, TypeError, StopIteration) as e:
        raise ResultsError(f"{os.path.join(d, VALIDATE_JSON)}: incomplete result ({e!r})") \
            from None
    body = [f"<p><b>{_e(summary)}</b></p>", "<h2>Figures</h2>"]
    body += [_img(p, c) for p, c in figs]
    body += ["<h2>Per snapshot and zone</h2>", _pre(table)]
    if meta.get("notes"):
        body += ["<h2>Notes</h2>", _pre("\n".join(meta["notes"]))]
    body += ["<h2>Machine</h2>", _pre(json.dumps(meta.get("machine", {}), indent=1)),
             "<h2>What-if replay counters</h2>",
             _pre(json.dumps({k: v for k, v in meta.get("whatif", {}).items()
                              if k not in ("snapshots",)}, indent=1, default=str))]
    out = os.path.join(d, "report.html")
    tmp = out + f".tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_page(f"spbsim validate: {meta.get('recording', '')}", "".join(body)))
    os.replace(tmp, out)
    return out
