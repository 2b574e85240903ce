"""One self-contained ``report.html`` for a results directory.

``write_report(dir)`` takes a run's results directory (``summary.json``), a
comparison directory (``compare.json``), a sweep directory (``sweep.json``,
report/sweep.py) or a ``spbsim validate --out`` directory (``validate.json``).
Figures go to ``dir/figures/`` and are embedded as base64 PNG (the animated
pageblock map as GIF), tables as HTML, scenario, parameters, summary and proc
snapshots in ``<pre>``; the page makes no network request.  Unreadable inputs raise
:class:`spbsim.results.ResultsError` naming the file (docs/results.md).
"""
from __future__ import annotations

import json
import math
import os

from ..results import ResultsError, load
from . import figures as F
from .page import _e, _fmt, _img, _page, _pre, _table_html  # noqa: F401
from .snapshots import PAGEBLOCK_SERIES, load_pageblock_series, load_pageblocks
from .compare import (COMPARE_FORMAT_VERSION, COMPARE_JSON, PAGEBLOCKS, build_table,
                      format_text, metric_list, metric_values)

__all__ = ["write_report", "write_figures", "write_animations", "REPORT",
           "COMPARE_FORMAT_VERSION"]

REPORT = "report.html"
FIG_DIR = "figures"
#: pageblock maps taller than this many superpageblocks are cut (the note says so)
MAP_MAX_ROWS = 256
#: the animation shows at most this many superpageblocks (the title says so)
ANIM_MAX_ROWS = 64
ANIM_FPS = 4

def _is_compare_dir(d):
    return os.path.isfile(os.path.join(d, COMPARE_JSON))


def _check_dir(d):
    if not os.path.exists(d):
        raise ResultsError(f"{d}: no such results directory")
    if not os.path.isdir(d):
        raise ResultsError(f"{d}: not a directory")


def _load_compare(d):
    path = os.path.join(d, COMPARE_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: unreadable JSON: {e}") from None
    if not isinstance(meta, dict) or "runs" not in meta or "policies" not in meta:
        raise ResultsError(f"{path}: not a comparison written by spbsim compare "
                           f"(no 'runs'/'policies')")
    ver = meta.get("format_version", 1)
    if not isinstance(ver, int) or isinstance(ver, bool):
        raise ResultsError(f"{path}: format_version {ver!r} is not an integer")
    if ver != COMPARE_FORMAT_VERSION:
        what = ("newer than this spbsim supports", "upgrade spbsim") \
            if ver > COMPARE_FORMAT_VERSION else ("older than this spbsim supports",
                                                 "re-run the comparison")
        raise ResultsError(f"{path}: format_version {ver} is {what[0]} "
                           f"({COMPARE_FORMAT_VERSION}): {what[1]}")
    if not isinstance(meta["policies"], list) or not isinstance(meta["runs"], dict):
        raise ResultsError(f"{path}: 'policies' must be a list and 'runs' an object")
    runs = {}
    for p in meta["policies"]:
        listed = meta["runs"].get(p) or {}
        if not isinstance(listed, dict):
            raise ResultsError(f"{path}: runs[{p!r}] must map seeds to directories")
        for sd, rel in listed.items():
            try:
                seed = int(sd)
            except (TypeError, ValueError):
                raise ResultsError(f"{path}: runs[{p!r}]: seed {sd!r} is not an integer") \
                    from None
            try:
                runs[(p, seed)] = load(os.path.join(d, str(rel)))
            except ResultsError as e:           # name the comparison and the run too
                raise ResultsError(f"{e} [run {p} seed {seed} listed in {path}]") from None
    if not runs:
        raise ResultsError(f"{path}: lists no runs")
    return meta, runs


def _pageblock_map(npz, stem, title):
    """The pageblock map from a pageblocks.npz (ResultsError if unreadable)."""
    return _png(F.pageblock_map(load_pageblocks(npz), stem, title=title,
                                max_rows=MAP_MAX_ROWS))


def _animation(run_dir, path, title, fps=ANIM_FPS):
    """Animate run_dir's pageblocks_series.npz into path; None when the run
    saved no snapshots."""
    if not os.path.isfile(os.path.join(run_dir, PAGEBLOCK_SERIES)):
        return None
    F.pageblock_map_animation(load_pageblock_series(run_dir), path, fps=fps, title=title,
                              max_rows=ANIM_MAX_ROWS)
    return path


def write_figures(d, animation=True):
    """Write the figures of results dir ``d`` (one run or a comparison) to
    ``d/figures/``; returns [(png or gif path, caption)]."""
    d = os.fspath(d)
    _check_dir(d)
    fd = os.path.join(d, FIG_DIR)
    from .validation import is_validate_dir, validate_figures
    if is_validate_dir(d):
        return validate_figures(d)
    from .sweep import is_sweep_dir, load_sweep_runs, sweep_figures
    if is_sweep_dir(d):
        meta, _, runs = load_sweep_runs(d)
        return [(p, c) for p, c in sweep_figures(d, meta, runs) if p]
    if _is_compare_dir(d):
        meta, runs = _load_compare(d)
        return _compare_figures(fd, meta, runs, animation)
    return _run_figures(fd, load(d), d, animation=animation)


def write_animations(d, path, fps=ANIM_FPS):
    """Write the pageblock map animation of results dir ``d`` to ``path``
    (.gif, or .mp4 with ffmpeg).  For a comparison directory, one file per
    policy (its first seed): ``<stem>-<policy>.<ext>``.  Returns the paths;
    ResultsError when no run of ``d`` saved pageblock snapshots."""
    from .compare import policy_dirname
    d, path = os.fspath(d), os.fspath(path)
    F.check_animation_path(path)            # MP4 without ffmpeg: fail before loading anything
    _check_dir(d)
    from .sweep import is_sweep_dir
    if is_sweep_dir(d):
        raise ResultsError(f"{d}: a sweep directory has no pageblock animation; animate one "
                           f"of its runs (spbsim sweep --keep-runs keeps them under runs/)")
    if _is_compare_dir(d):
        meta, runs = _load_compare(d)
        root, ext = os.path.splitext(path)
        out = []
        for p in meta["policies"]:
            seeds = sorted(sd for q, sd in runs if q == p)
            if not seeds:
                continue
            r = runs[(p, seeds[0])]
            got = _animation(r.path, f"{root}-{policy_dirname(p)}{ext}",
                             f"pageblock map: {meta.get('scenario', '')}: {p}, seed {seeds[0]}",
                             fps)
            if got:
                out.append(got)
        if not out:
            raise ResultsError(f"{d}: no run of this comparison has {PAGEBLOCK_SERIES} "
                               f"(pageblock snapshots; re-run with this spbsim)")
        return out
    res = load(d)
    s = res.summary
    got = _animation(d, path, f"pageblock map: {s.get('scenario', '?')} / "
                              f"{s.get('policy', '?')} / seed {s.get('seed', '?')}", fps)
    if not got:
        raise ResultsError(f"{d}: missing {PAGEBLOCK_SERIES} (pageblock snapshots, written by "
                           f"`spbsim run` and `spbsim compare` since the animation exists): "
                           f"nothing to animate")
    return [got]


def _png(paths):
    return next(p for p in paths if p.endswith(".png"))


def _run_figures(fd, res, d, prefix="", animation=True):
    out = []
    name = f"{res.summary.get('scenario', '?')} / {res.summary.get('policy', '?')} / seed " \
           f"{res.summary.get('seed', '?')}"
    if len(res.timeseries):
        out.append((_png(F.timeseries_figure(res.timeseries, os.path.join(fd, prefix + "timeseries"),
                                             title=name)), f"time series: {name}"))
    npz = os.path.join(d, PAGEBLOCKS)
    if os.path.isfile(npz):
        out.append((_pageblock_map(npz, os.path.join(fd, prefix + "pageblock_map"),
                                   f"pageblock map at the end: {name}"),
                    f"pageblock map: {name}"))
        owners = (res.summary.get("taints") or {}).get("owners")
        data = load_pageblocks(npz)
        if owners is not None and "pb_taint" in data and data["pb_taint"].any():
            out.append((_png(F.taint_map(data, owners, os.path.join(fd, prefix + "taint_map"),
                                         title=f"who polluted it (first fragmenting fallback "
                                               f"since the block was last free): {name}",
                                         max_rows=MAP_MAX_ROWS)),
                        f"pageblocks by the source that polluted them: {name}"))
    if animation:
        gif = _animation(d, os.path.join(fd, prefix + "pageblock_map_anim.gif"),
                         f"pageblock map: {name}")
        if gif:
            out.append((gif, f"pageblock map over simulated time: {name}"))
    if not prefix:
        out.append((_png(F.claim_steal_bars({res.summary.get("policy", "run"): [res.summary]},
                                            os.path.join(fd, "claim_steal"))),
                    "fallback claims and steals"))
    return out


def _compare_figures(fd, meta, runs, animation=True):
    from .compare import policy_dirname
    pols = meta["policies"]
    frames = {p: [r.timeseries for (q, _), r in sorted(runs.items()) if q == p] for p in pols}
    sums = {p: [r.summary for (q, _), r in sorted(runs.items()) if q == p] for p in pols}
    out = [(_png(F.overlay_figure(frames, os.path.join(fd, "overlay"),
                                  title=f"{meta.get('scenario', '')}: policies overlaid")),
            "time series, policies overlaid (mean over seeds, min..max band)"),
           (_png(F.claim_steal_bars(sums, os.path.join(fd, "claim_steal"))),
            "fallback claims and steals (mean over seeds, whiskers min..max)")]
    for p in pols:
        seeds = sorted(sd for q, sd in runs if q == p)
        r = runs[(p, seeds[0])]
        npz = os.path.join(r.path, PAGEBLOCKS)
        if os.path.isfile(npz):
            out.append((_pageblock_map(npz, os.path.join(
                fd, f"pageblock_map_{policy_dirname(p)}_seed{seeds[0]}"),
                f"pageblock map at the end: {p}, seed {seeds[0]}"),
                f"pageblock map: {p}, seed {seeds[0]}"))
        if animation:
            gif = _animation(r.path, os.path.join(
                fd, f"pageblock_map_anim_{policy_dirname(p)}_seed{seeds[0]}.gif"),
                f"pageblock map: {p}, seed {seeds[0]}")
            if gif:
                out.append((gif, f"pageblock map over simulated time: {p}, seed {seeds[0]}"))
    return out


def _kv_table(d):
    rows = "".join(f"<tr><td>{_e(k)}</td><td class=n>{_e(_fmt(v) if not isinstance(v, (dict, list)) else json.dumps(v))}</td></tr>"
                   for k, v in d.items())
    return f"<table class=kv><tr><th>key</th><th>value</th></tr>{rows}</table>"


def _run_sections(res, level=2):
    h = f"h{level}"
    s = res.summary
    parts = []
    vals = metric_values(s, metric_list([s]))
    parts.append(f"<{h}>Summary</{h}>" + _kv_table({k: (None if math.isnan(v) else v)
                                                     for k, v in vals.items()}))
    tz = s.get("taints")
    names = []
    if tz and tz.get("pageblocks_polluted_by_source") is not None:
        now = tz.get("polluted_now_by_source", {})
        spbs = tz.get("spbs_tainted_by_source", {})
        names = list(dict.fromkeys(list(tz["pageblocks_polluted_by_source"]) + list(now)
                                   + list(spbs)))
    if names:
        parts.append(f"<{h}>Who polluted it</{h}>"
                     "<p>Per source: pageblocks it polluted (first fragmenting fallback since "
                     "the block was last free), of them still polluted at the end, and SPBs it "
                     "tainted; every event is in taints.parquet.</p>"
                     + _kv_table({k: f"{tz['pageblocks_polluted_by_source'].get(k, 0):,} polluted, "
                                     f"{now.get(k, 0):,} now, {spbs.get(k, 0):,} SPB taints"
                                  for k in names}))
    if not s.get("complete", False):
        parts.append("<p class=worse>This run did not complete (interrupted); numbers are "
                     "from the point where it stopped.</p>")
    parts.append(f"<{h}>Parameters</{h}>" + _kv_table(res.params))
    if res.scenario_text:
        parts.append(f"<{h}>Scenario</{h}>" + _pre(res.scenario_text))
    for name, text in res.proc.items():
        parts.append(f"<{h}>/proc/{_e(name)}</{h}>" + _pre(text))
    parts.append(f"<{h}>summary.json</{h}>"
                 + _pre(json.dumps(s, indent=1, sort_keys=True, default=str)))
    return "".join(parts)


def write_report(d, animation=True):
    """Write ``d/report.html``; returns its path.  ResultsError for a missing
    directory, missing/unreadable files, a format_version this spbsim does not
    read, or a directory it cannot write.  ``animation``: also render and
    embed the animated pageblock map(s) when the runs saved snapshots."""
    d = os.fspath(d)
    _check_dir(d)
    try:
        return _write_report(d, animation)
    except OSError as e:       # read-only directory, disk full, ...
        where = getattr(e, "filename2", None) or e.filename or d    # os.replace: the target
        raise ResultsError(f"{where}: {e.strerror or e} (while writing the report of "
                           f"{d})") from None


def _write_report(d, animation):
    from .validation import is_validate_dir, write_validate_report
    if is_validate_dir(d):
        return write_validate_report(d)
    from .sweep import is_sweep_dir, sweep_report_body
    if is_sweep_dir(d):
        title, body = sweep_report_body(d)
    elif _is_compare_dir(d):
        meta, runs = _load_compare(d)
        figs = _compare_figures(os.path.join(d, FIG_DIR), meta, runs, animation)
        pols = meta["policies"]
        seeds = sorted({sd for _, sd in runs})
        table = build_table({k: r.summary for k, r in runs.items()}, pols, seeds)
        checks = {sd: runs[(pols[0], sd)].summary.get("request_checksum") for sd in seeds}
        body = [f"<p>Scenario <b>{_e(meta.get('scenario', '?'))}</b>, policies "
                f"{_e(', '.join(pols))} (baseline: {_e(pols[0])}), seeds {_e(seeds)}, "
                f"overrides {_e(meta.get('overrides') or {})}.</p>",
                "<h2>Comparison</h2>", _table_html(table),
                "<p class=note>Mean over seeds ± 95 % confidence half-width (Student's t); "
                "(%) change against the first policy; green: better, red: worse.</p>",
                "<h3>As text</h3>", _pre(format_text(table, checks)),
                "<h2>Figures</h2>"] + [_img(p, c) for p, c in figs]
        first = runs[(pols[0], seeds[0])]
        if first.scenario_text:
            body += ["<h2>Scenario</h2>", _pre(first.scenario_text)]
        body.append("<h2>Runs</h2>")
        for (p, sd), r in sorted(runs.items(), key=lambda kv: (pols.index(kv[0][0]), kv[0][1])):
            body.append(f"<details><summary>{_e(p)}, seed {sd} "
                        f"({_e(os.path.relpath(r.path, d))})</summary>"
                        f"{_run_sections(r, level=3)}</details>")
        title = f"spbsim compare: {meta.get('scenario', '')}"
    else:
        res = load(d)
        figs = _run_figures(os.path.join(d, FIG_DIR), res, d, animation=animation)
        s = res.summary
        body = [f"<p>Scenario <b>{_e(s.get('scenario', '?'))}</b>, policy "
                f"{_e(s.get('policy', '?'))}, seed {_e(s.get('seed', '?'))}, "
                f"{_e(s.get('simulated_s', '?'))} s simulated, request checksum "
                f"{_e(s.get('request_checksum', '?'))}.</p>", "<h2>Figures</h2>"]
        if not os.path.isfile(os.path.join(d, PAGEBLOCKS)):
            body.append("<p class=note>No pageblocks.npz in this directory: no pageblock "
                        "map (spbsim compare writes one).</p>")
        body += [_img(p, c) for p, c in figs]
        body.append(_run_sections(res))
        title = f"spbsim run: {s.get('scenario', '')} / {s.get('policy', '')}"
    out = os.path.join(d, REPORT)
    tmp = out + f".tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(_page(title, "".join(body)))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out
