"""The report of a ``spbsim sweep`` directory.

Each metric of the comparison table against each grid axis (one line per
policy: mean over seeds with its 95 % band), the paired deltas against the
first policy (per-seed differences, mean and 95 % band), and per grid cell
the compare table in Markdown (``sweep.md``) and HTML (``report.html``).
Reads the rows through :func:`spbsim.results.load_sweep`; writes only
``figures/``, ``sweep.md`` and ``report.html``.
"""
from __future__ import annotations

import itertools
import math
import os

import numpy as np

from ..results import ResultsError, load_sweep
from ..sweep import META_COLUMNS, SWEEP_JSON, SWEEP_PARQUET
from .compare import (METRICS, _stats, build_table, format_markdown, metric_values,
                      policy_dirname)

__all__ = ["is_sweep_dir", "load_sweep_runs", "sweep_figures", "sweep_tables",
           "write_sweep_markdown", "SWEEP_MD"]

SWEEP_MD = "sweep.md"
#: figures drawn per axis at most (one per combination of the other axes' values)
MAX_FIGURES_PER_AXIS = 12


def is_sweep_dir(d):
    return os.path.isfile(os.path.join(d, SWEEP_JSON)) or \
        os.path.isfile(os.path.join(d, SWEEP_PARQUET))


def _nested(row, summary_cols, grid_keys):
    """A flattened summary row back into the summary dict the metrics read."""
    out = {}
    for col in summary_cols:
        v = row.get(col)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if hasattr(v, "item"):
            v = v.item()
        name = col[8:] if col.startswith("summary.") and col[8:] in grid_keys else col
        node = out
        *path, last = name.split(".")
        for p in path:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[last] = v
    return out


def load_sweep_runs(d):
    """(meta, df, runs) with runs = {(grid values tuple, policy, seed): summary}
    of the finished runs."""
    d = os.fspath(d)
    if not os.path.isfile(os.path.join(d, SWEEP_JSON)):
        raise ResultsError(f"{d}: missing {SWEEP_JSON} (not a sweep directory written by "
                           f"spbsim sweep)")
    df = load_sweep(d)
    meta = df.attrs["sweep"]
    grid_keys = [k for k, _ in meta.get("grid") or []]
    fixed = set(grid_keys) | set(META_COLUMNS)
    summary_cols = [c for c in df.columns if c not in fixed] + ["request_checksum", "wall_s"]
    runs = {}
    for row in df.to_dict("records"):
        if row.get("status") != "ok":
            continue
        key = (tuple(str(row.get(k)) for k in grid_keys), str(row["policy"]), int(row["seed"]))
        runs[key] = _nested(row, summary_cols, grid_keys)
    return meta, df, runs


def _combos(meta):
    grid = meta.get("grid") or []
    return [tuple(c) for c in itertools.product(*[vs for _, vs in grid])] if grid else [()]


def _slug(text):
    return policy_dirname(text)[:80]


def sweep_figures(d, meta, runs):
    """figures/sweep_<axis>[...].png (metrics against the axis) and
    sweep_delta_<axis>[...].png (paired deltas); returns [(png, caption)]."""
    from . import figures as F
    plt = F.plt
    grid = meta.get("grid") or []
    pols = meta["policies"]
    seeds = meta["seeds"]
    fd = os.path.join(d, "figures")
    vals = {k: metric_values(s) for k, s in runs.items()}
    metrics = [name for name, _, _ in METRICS
               if any(not math.isnan(v[name]) for v in vals.values())]
    out = []
    if not grid or not metrics:
        return out
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ai, (axis, values) in enumerate(grid):
        others = [(k, vs) for j, (k, vs) in enumerate(grid) if j != ai]
        rests = list(itertools.product(*[vs for _, vs in others])) if others else [()]
        for rest in rests[:MAX_FIGURES_PER_AXIS]:
            def full(v, rest=rest):
                r = list(rest)
                r.insert(ai, v)
                return tuple(r)
            where = ", ".join(f"{k}={v}" for (k, _), v in zip(others, rest))
            stem = _slug(axis) + (f"_{_slug(where)}" if where else "")
            for kind in ("metric", "delta"):
                if kind == "delta" and len(pols) < 2:
                    continue
                ncol = 4
                nrow = math.ceil(len(metrics) / ncol)
                fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.8 * nrow),
                                         squeeze=False)
                x = np.arange(len(values))
                for m, ax in zip(metrics, axes.ravel()):
                    shown = pols if kind == "metric" else pols[1:]
                    for k, p in enumerate(shown):
                        c = colors[(k if kind == "metric" else k + 1) % len(colors)]
                        st = []
                        for v in values:
                            if kind == "metric":
                                xs = [vals[(full(v), p, sd)][m] for sd in seeds
                                      if (full(v), p, sd) in vals]
                            else:
                                xs = [vals[(full(v), p, sd)][m] - vals[(full(v), pols[0], sd)][m]
                                      for sd in seeds if (full(v), p, sd) in vals
                                      and (full(v), pols[0], sd) in vals]
                            st.append(_stats(xs))
                        mean = np.array([s["mean"] for s in st])
                        half = np.array([s["ci95"] for s in st])
                        ns = max((s["n"] for s in st), default=0)
                        label = p if kind == "metric" else f"{p} - {pols[0]}"
                        ax.plot(x, mean, marker="o", color=c, label=f"{label} (n={ns})")
                        ok = ~np.isnan(half)
                        if ok.any():
                            ax.fill_between(x, np.where(ok, mean - half, np.nan),
                                            np.where(ok, mean + half, np.nan), color=c,
                                            alpha=0.2, linewidth=0)
                    if kind == "delta":
                        ax.axhline(0, color="black", linewidth=0.7)
                    ax.set_title(m, fontsize=9)
                    ax.set_xticks(x)
                    ax.set_xticklabels(values, fontsize=8, rotation=30 if len(values) > 5 else 0)
                    ax.tick_params(axis="y", labelsize=8)
                    ax.grid(alpha=0.3)
                for ax in axes.ravel()[len(metrics):]:
                    ax.axis("off")
                axes.ravel()[0].legend(fontsize=7)
                what = ("mean over seeds, band: 95 % confidence interval" if kind == "metric"
                        else f"paired difference against {pols[0]} (same seed, same request "
                             f"stream): mean, band: 95 % confidence interval")
                what_kind = "metrics" if kind == "metric" else "paired deltas"
                title = (f"{meta.get('scenario', '')}: {what_kind} against {axis}"
                         + (f" ({where})" if where else ""))
                height = 2.8 * nrow
                fig.suptitle(f"{title}\n{what}", fontsize=11, y=1 - 0.1 / height, va="top")
                # fixed margins in inches: tight_layout costs seconds on twenty panels
                fig.subplots_adjust(left=0.05, right=0.98, bottom=0.5 / height,
                                    top=1 - 1.0 / height, hspace=0.5, wspace=0.25)
                path = os.path.join(fd, ("sweep_" if kind == "metric" else "sweep_delta_")
                                    + stem + ".png")
                out.append((F.save_figure(fig, path, dpi=80)[0], title))
        if len(rests) > MAX_FIGURES_PER_AXIS:
            out.append((None, f"{axis}: only the first {MAX_FIGURES_PER_AXIS} of {len(rests)} "
                              f"combinations of the other axes are drawn"))
    return out


def sweep_tables(meta, runs):
    """[(grid values dict, table, checksums, unpaired note)] per grid cell with
    finished runs; the table is compare's (mean ± 95 % interval, % change)."""
    grid_keys = [k for k, _ in meta.get("grid") or []]
    pols = meta["policies"]
    out = []
    for combo in _combos(meta):
        sub = {(p, sd): s for (c, p, sd), s in runs.items() if c == combo}
        if not sub:
            out.append((dict(zip(grid_keys, combo)), None, {}, None))
            continue
        seeds = sorted({sd for _, sd in sub})
        present = [p for p in pols if any((p, sd) in sub for sd in seeds)]
        table = build_table(sub, present, seeds)
        checks, bad = {}, []
        for sd in seeds:
            got = {p: sub[(p, sd)].get("request_checksum") for p in present if (p, sd) in sub}
            if len(set(got.values())) > 1:
                bad.append(f"seed {sd}: " + ", ".join(f"{p} {c}" for p, c in got.items()))
            checks[sd] = next(iter(got.values()))
        out.append((dict(zip(grid_keys, combo)), table, checks,
                    "; ".join(bad) if bad else None))
    return out


def _cell_title(gv):
    return ", ".join(f"{k}={v}" for k, v in gv.items()) or "all runs"


def failed_rows(df):
    if "status" not in df.columns:
        return []
    return [r for r in df.to_dict("records") if r.get("status") != "ok"]


def write_sweep_markdown(d, meta, df, tables):
    """d/sweep.md: one compare table per grid cell, then the failed runs."""
    grid_keys = [k for k, _ in meta.get("grid") or []]
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    lines = [f"# spbsim sweep: {meta.get('scenario', '')}", "",
             f"Policies {', '.join(f'`{p}`' for p in meta['policies'])} (baseline "
             f"`{meta['policies'][0]}`), seeds {meta['seeds']}, grid "
             + (", ".join(f"`{k}` = {', '.join(vs)}" for k, vs in meta.get("grid") or [])
                or "none")
             + (f", overrides {meta.get('overrides')}" if meta.get("overrides") else "")
             + f"; {n_ok} of {len(meta.get('cells') or [])} runs finished ok.", ""]
    for gv, table, checks, bad in tables:
        lines += [f"## {_cell_title(gv)}", ""]
        if table is None:
            lines += ["No finished run.", ""]
            continue
        lines.append(format_markdown(table, checks).rstrip("\n"))
        if bad:
            lines += ["", f"**Not paired**: {bad}"]
        lines.append("")
    bad_rows = failed_rows(df)
    if bad_rows:
        lines += ["## Failed runs", "", "| " + " | ".join(grid_keys + ["policy", "seed", "error"])
                  + " |", "|" + "---|" * (len(grid_keys) + 3)]
        for r in bad_rows:
            cells = [str(r.get(k)) for k in grid_keys] + [str(r.get("policy")),
                                                          str(r.get("seed")),
                                                          str(r.get("error"))]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    path = os.path.join(d, SWEEP_MD)
    tmp = path + f".tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
    return path


def sweep_report_body(d):
    """(title, HTML body parts) of a sweep directory's report; writes the
    figures and sweep.md."""
    from .page import _e, _img, _table_html
    meta, df, runs = load_sweep_runs(d)
    figs = sweep_figures(d, meta, runs)
    tables = sweep_tables(meta, runs)
    md = write_sweep_markdown(d, meta, df, tables)
    pols = meta["policies"]
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    body = [f"<p>Scenario <b>{_e(meta.get('scenario', '?'))}</b>, policies "
            f"{_e(', '.join(pols))} (baseline: {_e(pols[0])}), seeds {_e(meta['seeds'])}, grid "
            + _e("; ".join(f"{k} = {', '.join(vs)}" for k, vs in meta.get("grid") or [])
                 or "none")
            + f", overrides {_e(meta.get('overrides') or {})}: {n_ok} of "
              f"{len(meta.get('cells') or [])} runs finished ok.  The tables are also in "
              f"{_e(os.path.basename(md))}.</p>", "<h2>Metrics against the grid axes</h2>"]
    for p, c in figs:
        body.append(_img(p, c) if p else f"<p class=note>{_e(c)}</p>")
    if not figs:
        body.append("<p class=note>No grid axis (or no finished run): no figure.</p>")
    body.append("<h2>Per grid cell</h2>")
    for gv, table, checks, bad in tables:
        inner = ("<p class=note>No finished run.</p>" if table is None else
                 _table_html(table) + "<p class=note>Mean over seeds ± 95 % confidence "
                 "half-width (Student's t); (%) change against the first policy; request "
                 "checksums (paired): "
                 + _e(", ".join(f"seed {sd} {cs}" for sd, cs in sorted(checks.items())))
                 + "</p>" + (f"<p class=worse>Not paired: {_e(bad)}</p>" if bad else ""))
        body.append(f"<details open><summary>{_e(_cell_title(gv))}</summary>{inner}</details>")
    bad_rows = failed_rows(df)
    if bad_rows:
        grid_keys = [k for k, _ in meta.get("grid") or []]
        head = grid_keys + ["policy", "seed", "error"]
        rows = "".join("<tr>" + "".join(f"<td>{_e(r.get(k))}</td>" for k in head) + "</tr>"
                       for r in bad_rows)
        body.append("<h2>Failed runs</h2><table><tr>"
                    + "".join(f"<th>{_e(h)}</th>" for h in head) + f"</tr>{rows}</table>")
    return f"spbsim sweep: {meta.get('scenario', '')}", body
