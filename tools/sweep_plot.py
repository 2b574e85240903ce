"""Draw chosen metrics of a ``spbsim sweep`` directory against one grid axis,
a line per policy (mean over seeds, 95 % interval as a band), as one PNG for
docs/findings.md.  A metric is ``LABEL=EXPR``: a pandas expression over the
sweep's columns (summary scalars, names in backticks), e.g.

    python tools/sweep_plot.py results/sweep-search-cost --x memory \\
        --y 'free lists per allocation=`sim.sim_freelists_visited` / `sim.sim_alloc_requests`' \\
        --out docs/sweep-search-cost.png
"""
import argparse
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spbsim.report.compare import _stats  # noqa: E402
from spbsim.results import load_sweep  # noqa: E402


def _metric(s):
    label, sep, expr = s.partition("=")
    if not sep or not expr.strip():
        raise argparse.ArgumentTypeError(f"{s!r}: expected LABEL=EXPR")
    return label.strip(), expr.strip()


def table(df, x, metrics):
    """{(policy, x value): {label: (mean, half-width of the 95 % interval, n)}}"""
    out = {}
    for (pol, xv), g in df.groupby(["policy", x], sort=False):
        row = {}
        for label, expr in metrics:
            st = _stats(g.eval(expr).astype(float).to_numpy())
            mean, half, n = st["mean"], st["ci95"], st["n"]
            row[label] = (mean, half, n)
        out[(pol, str(xv))] = row
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--x", required=True, help="the grid axis (its key as given to --grid)")
    ap.add_argument("--xlabel")
    ap.add_argument("--xticks", help="comma-separated tick labels instead of the grid values")
    ap.add_argument("--y", action="append", type=_metric, required=True, help="LABEL=EXPR")
    ap.add_argument("--title", default="")
    ap.add_argument("--logy", action="append", default=[], help="labels drawn on a log axis")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    df = load_sweep(a.sweep_dir)
    df = df[df["status"] == "ok"]
    meta = df.attrs["sweep"]
    axes = dict((k, [str(v) for v in vs]) for k, vs in meta["grid"])
    if a.x not in axes:
        sys.exit(f"{a.sweep_dir}: no grid axis {a.x!r} (axes: {', '.join(axes)})")
    xs = axes[a.x]
    df = df.assign(**{a.x: df[a.x].astype(str)})
    t = table(df, a.x, a.y)
    pols = meta["policies"]
    fig, axs = plt.subplots(1, len(a.y), figsize=(4.2 * len(a.y), 3.4), squeeze=False)
    for ax, (label, _) in zip(axs[0], a.y):
        for pol in pols:
            pts = [t.get((pol, x), {}).get(label, (math.nan, math.nan, 0)) for x in xs]
            mean = np.array([p[0] for p in pts])
            half = np.array([p[1] for p in pts])
            n = max(p[2] for p in pts)
            ax.plot(range(len(xs)), mean, marker="o", label=f"{pol} (n={n})")
            if np.isfinite(half).any():
                ax.fill_between(range(len(xs)), mean - half, mean + half, alpha=0.2, linewidth=0)
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels(a.xticks.split(",") if a.xticks else xs, fontsize=8)
        ax.set_xlabel(a.xlabel or a.x, fontsize=9)
        ax.set_title(label, fontsize=9)
        if label in a.logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
    axs[0][0].legend(fontsize=7)
    if a.title:
        fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=90)
    for (pol, x), row in t.items():
        print(pol, x, "  ".join(f"{k}: {m:.4g} ±{h:.2g} (n={n})" for k, (m, h, n) in row.items()))


if __name__ == "__main__":
    main()
