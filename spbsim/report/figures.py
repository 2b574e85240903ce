"""Figures (matplotlib, Agg backend; each written as PNG and SVG).

:func:`pageblock_map` (one row per superpageblock, one cell per pageblock),
:func:`taint_map` (the same map coloured by the source that polluted a block),
:func:`timeseries_figure` (1 GB / 2 MB free and obtainable, tainted SPBs,
free memory), :func:`overlay_figure` (several policies, mean with a min/max
band over seeds), :func:`claim_steal_bars` and :func:`pageblock_map_animation`
(GIF, or MP4 with ffmpeg, from ``pageblocks_series.npz``).  A ``path`` ending
in ``.png`` or ``.svg`` writes that format only; any other name is a stem for
both.  Every function returns the list of files written.
"""
from __future__ import annotations

import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..errors import SpbsimError  # noqa: E402
from ..mm.const import (MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, PB_all_free, PB_has_movable,
                        PB_has_reclaimable, PB_has_unmovable, SUPERPAGEBLOCK_NR_PAGEBLOCKS,
                        ZONE_NAMES)

__all__ = ["PB_CLASSES", "classify_pageblocks", "spb_rows", "pageblock_map", "taint_map",
           "timeseries_figure", "overlay_figure", "claim_steal_bars", "save_figure",
           "TS_PANELS", "pageblock_map_animation", "AnimationError", "ANIMATION_FORMATS"]

#: content classes of the pageblock map, in colour order
PB_CLASSES = [
    ("free", "#ffffff"),
    ("movable", "#4caf50"),
    ("reclaimable", "#ffc107"),
    ("unmovable", "#d32f2f"),
    ("mixed", "#8e24aa"),
    ("highatomic", "#1e88e5"),
    ("isolated", "#00bcd4"),
    ("hole", "#9e9e9e"),
]
C_FREE, C_MOV, C_REC, C_UNM, C_MIX, C_HIGH, C_ISO, C_HOLE = range(len(PB_CLASSES))


def classify_pageblocks(pb_mt, pb_flags, pb_zone):
    """Content class (index into PB_CLASSES) of each pageblock.

    Precedence: hole (no zone), isolated (pb_mt ISOLATE), highatomic (pb_mt
    HIGHATOMIC), free (PB_all_free), mixed (more than one PB_has_* bit), then
    the one PB_has_* bit; a used block with no content bit (reserved pages
    only) takes its migratetype's class.
    """
    mt = np.asarray(pb_mt)
    fl = np.asarray(pb_flags).astype(np.int64)
    zone = np.asarray(pb_zone)
    out = np.empty(mt.shape, np.int8)
    unm = (fl & PB_has_unmovable) != 0
    rec = (fl & PB_has_reclaimable) != 0
    mov = (fl & PB_has_movable) != 0
    nbits = unm.astype(int) + rec + mov
    by_mt = np.where(mt == MIGRATE_UNMOVABLE, C_UNM,
                     np.where(mt == MIGRATE_RECLAIMABLE, C_REC, C_MOV))
    out[:] = by_mt
    out[mov & (nbits == 1)] = C_MOV
    out[rec & (nbits == 1)] = C_REC
    out[unm & (nbits == 1)] = C_UNM
    out[nbits > 1] = C_MIX
    out[(fl & PB_all_free) != 0] = C_FREE
    out[mt == MIGRATE_HIGHATOMIC] = C_HIGH
    out[mt == MIGRATE_ISOLATE] = C_ISO
    out[zone < 0] = C_HOLE
    return out


def _arrays(src):
    """(pb_mt, pb_flags, pb_zone) from a Machine, its Mem, an npz path or a mapping."""
    if isinstance(src, (str, os.PathLike)):
        with np.load(os.fspath(src)) as z:
            return z["pb_mt"], z["pb_flags"], z["pb_zone"]
    mem = getattr(src, "mem", src)
    if hasattr(mem, "pb_mt"):
        return mem.pb_mt, mem.pb_flags, mem.pb_zone
    return src["pb_mt"], src["pb_flags"], src["pb_zone"]


def spb_rows(pb_mt, pb_flags, pb_zone):
    """Per superpageblock: (classes[512], label).  Labels read
    ``Normal SPB 3 tainted``; category as in observe.census.spb_census."""
    per = SUPERPAGEBLOCK_NR_PAGEBLOCKS
    cls = classify_pageblocks(pb_mt, pb_flags, pb_zone)
    n = (cls.size + per - 1) // per
    pad = n * per - cls.size
    cls = np.concatenate([cls, np.full(pad, C_HOLE, np.int8)]).reshape(n, per)
    zone = np.concatenate([np.asarray(pb_zone), np.full(pad, -1, np.int8)]).reshape(n, per)
    fl = np.concatenate([np.asarray(pb_flags), np.zeros(pad, np.uint8)]).reshape(n, per)
    labels = []
    for i in range(n):
        zs = [int(z) for z in np.unique(zone[i]) if z >= 0]
        present = zone[i] >= 0
        if not zs:
            labels.append(f"- SPB {i} hole")
            continue
        tainted = bool((present & ((fl[i] & (PB_has_unmovable | PB_has_reclaimable)) != 0)).any())
        empty = bool((~present | ((fl[i] & PB_all_free) != 0)).all())
        cat = "tainted" if tainted else ("empty" if empty else "clean")
        labels.append(f"{'+'.join(ZONE_NAMES[z] for z in zs)} SPB {i} {cat}")
    return cls, labels


def save_figure(fig, path, dpi=100):
    """Write fig as path (.png/.svg) or path.png + path.svg; close it."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    targets = [path] if ext.lower() in (".png", ".svg") else [path + ".png", path + ".svg"]
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    for t in targets:
        fig.savefig(t, dpi=dpi, metadata={"Date": None} if t.endswith(".svg") else None)
    plt.close(fig)
    return targets


def pageblock_map(src, path, title=None, max_rows=None):
    """Draw the pageblock map of ``src`` (a Machine, Mem, pageblocks.npz path or
    mapping with pb_mt/pb_flags/pb_zone).  ``max_rows``: draw only the first
    rows (a note says how many were left out)."""
    cls, labels = spb_rows(*_arrays(src))
    n_all = cls.shape[0]
    if max_rows is not None and n_all > max_rows:
        cls, labels = cls[:max_rows], labels[:max_rows]
    n = cls.shape[0]
    height = min(2.0 + 0.28 * n, 60.0)
    fig, ax = plt.subplots(figsize=(12, height))
    cmap = ListedColormap([c for _, c in PB_CLASSES])
    ax.imshow(cls, cmap=cmap, vmin=-0.5, vmax=len(PB_CLASSES) - 0.5, aspect="auto",
              interpolation="nearest")
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=7 if n > 30 else 9)
    ax.set_xlabel(f"pageblock within the superpageblock (2 MiB each, "
                  f"{SUPERPAGEBLOCK_NR_PAGEBLOCKS} per 1 GiB)")
    t = title or "pageblock map"
    if n < n_all:
        t += f" (first {n} of {n_all} superpageblocks)"
    ax.set_title(t)
    counts = np.bincount(cls.ravel(), minlength=len(PB_CLASSES))
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.5, label=f"{name} ({counts[i]:,})")
               for i, (name, c) in enumerate(PB_CLASSES)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def taint_map(data, owners, path, title=None, max_rows=None, top=9):
    """The pageblock map coloured by the source that polluted each block
    first since it was last wholly free (``data``: a pageblocks.npz mapping
    with ``pb_taint`` = owner + 1, 0 = not polluted; ``owners``: {owner id:
    name}, as summary.json ``taints.owners``).  The ``top`` sources by
    blocks get their own colour, the rest share one."""
    taint = np.asarray(data["pb_taint"]).astype(np.int64)
    zone = np.asarray(data["pb_zone"])
    per = SUPERPAGEBLOCK_NR_PAGEBLOCKS
    vals, counts = np.unique(taint[(taint > 0) & (zone >= 0)], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    keep = [int(vals[i]) for i in order[:top]]
    other = int(counts[order[top:]].sum()) if len(order) > top else 0
    # classes: 0 hole, 1 not polluted, 2.. the kept sources, last: other sources
    cls = np.ones(taint.shape, np.int64)
    cls[taint > 0] = 2 + len(keep)
    for k, v in enumerate(keep):
        cls[taint == v] = 2 + k
    cls[zone < 0] = 0
    n_all = (cls.size + per - 1) // per
    cls = np.concatenate([cls, np.zeros(n_all * per - cls.size, np.int64)]).reshape(n_all, per)
    if max_rows is not None and n_all > max_rows:
        cls = cls[:max_rows]
    n = cls.shape[0]
    palette = ["#ffffff", "#e0e0e0"] + list(plt.get_cmap("tab10").colors)[:len(keep)] + ["#424242"]
    fig, ax = plt.subplots(figsize=(12, min(2.0 + 0.28 * n, 60.0)))
    ax.imshow(cls, cmap=ListedColormap(palette), vmin=-0.5, vmax=len(palette) - 0.5,
              aspect="auto", interpolation="nearest")
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"SPB {i}" for i in range(n)], fontsize=7 if n > 30 else 9)
    ax.set_xlabel(f"pageblock within the superpageblock (2 MiB each, {per} per 1 GiB)")
    t = title or "who polluted it"
    if n < n_all:
        t += f" (first {n} of {n_all} superpageblocks)"
    ax.set_title(t)
    name = {int(k): v for k, v in owners.items()}
    labels = [("not polluted", int(((taint == 0) & (zone >= 0)).sum()))]
    labels += [(name.get(v - 1, f"owner {v - 1}"), int(counts[vals == v][0])) for v in keep]
    if other:
        labels.append(("other sources", other))
    handles = [Patch(facecolor=palette[1 + i], edgecolor="black", linewidth=0.5,
                     label=f"{lab} ({c:,})") for i, (lab, c) in enumerate(labels)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, title="first polluted by")
    fig.tight_layout()
    return save_figure(fig, path)


#: (panel title, [(column, label)], unit scale function or None)
TS_PANELS = [
    ("1 GB pages", [("1g_free", "free"), ("1g_obtainable", "obtainable")]),
    ("2 MB blocks", [("2m_free", "free"), ("2m_obtainable", "obtainable")]),
    ("tainted superpageblocks", [("spb_tainted", "tainted")]),
    ("free memory (GiB)", [("free_pages", "free")]),
]


def _series(df, col):
    if col not in df.columns:
        return None
    y = df[col].to_numpy(dtype=float)
    if col == "free_pages":
        y = y * 4096 / 2**30
    return y


def timeseries_figure(df, path, title=None):
    """The TS_PANELS of one run's timeseries (a pandas DataFrame)."""
    fig, axes = plt.subplots(len(TS_PANELS), 1, figsize=(10, 2.4 * len(TS_PANELS)), sharex=True)
    t = df["t_s"].to_numpy(dtype=float) if "t_s" in df.columns else np.arange(len(df))
    for ax, (ptitle, cols) in zip(axes, TS_PANELS):
        for col, label in cols:
            y = _series(df, col)
            if y is not None:
                ax.plot(t, y, label=label, drawstyle="steps-post")
        ax.set_title(ptitle, fontsize=10)
        ax.grid(alpha=0.3)
        if len(cols) > 1:
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("simulated time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def overlay_figure(frames, path, title=None):
    """A/B overlay: ``frames`` = {policy: [timeseries DataFrame per seed]}.
    Each series: mean over seeds (line) and min..max over seeds (band)."""
    n_lines = sum(len(c) for _, c in TS_PANELS)
    fig, axes = plt.subplots(n_lines, 1, figsize=(10, 2.2 * n_lines), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    i_ax = 0
    for ptitle, cols in TS_PANELS:
        for col, label in cols:
            ax = axes[i_ax]
            i_ax += 1
            for k, (policy, dfs) in enumerate(frames.items()):
                ys = [(_series(d, "t_s"), _series(d, col)) for d in dfs]
                ys = [(t, y) for t, y in ys if t is not None and y is not None and len(y)]
                if not ys:
                    continue
                n = min(len(y) for _, y in ys)
                t = ys[0][0][:n]
                arr = np.vstack([y[:n] for _, y in ys])
                c = colors[k % len(colors)]
                ax.plot(t, arr.mean(axis=0), color=c, label=f"{policy} (n={len(ys)})")
                if len(ys) > 1:
                    ax.fill_between(t, arr.min(axis=0), arr.max(axis=0), color=c, alpha=0.2,
                                    linewidth=0)
            ax.set_title(f"{ptitle}: {label}" if len(cols) > 1 else ptitle, fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("simulated time (s); line: mean over seeds, band: min..max")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


CLAIM_STEAL = [("sim_claim_success", "claims"), ("sim_claim_whole_block", "whole-block claims"),
               ("sim_steal", "steals")]


def claim_steal_bars(summaries, path, title=None):
    """``summaries`` = {policy: [summary dict per seed]}: grouped bars of the
    fallback counters (mean over seeds, whiskers min..max)."""
    pols = list(summaries)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(pols) + 3), 4))
    width = 0.8 / len(CLAIM_STEAL)
    x = np.arange(len(pols))
    for j, (key, label) in enumerate(CLAIM_STEAL):
        means, lo, hi = [], [], []
        for p in pols:
            v = np.array([float((s.get("sim") or {}).get(key, np.nan)) for s in summaries[p]])
            v = v[~np.isnan(v)]
            m = v.mean() if v.size else 0.0
            means.append(m)
            lo.append(m - (v.min() if v.size else 0.0))
            hi.append((v.max() if v.size else 0.0) - m)
        ax.bar(x + (j - (len(CLAIM_STEAL) - 1) / 2) * width, means, width, label=label,
               yerr=[lo, hi], capsize=3)
    ax.set_xticks(x)
    ax.set_xticklabels(pols)
    ax.set_ylabel("fallback events")
    ax.set_title(title or "fallbacks: claims and steals")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# animation
# ---------------------------------------------------------------------------

#: file extension -> matplotlib movie writer
ANIMATION_FORMATS = {".gif": "pillow", ".mp4": "ffmpeg"}


class AnimationError(SpbsimError):
    """An animation that cannot be written (format, missing ffmpeg, no frames)."""


def _frames_from(frames):
    """(t_s[K], [(pb_mt, pb_flags, pb_zone)] * K) from a series dict, a
    pageblocks_series.npz path / results directory, or [(t_s, src), ...]."""
    if isinstance(frames, (str, os.PathLike)):
        from .snapshots import load_pageblock_series
        frames = load_pageblock_series(frames)
    if isinstance(frames, dict):
        t = np.asarray(frames["t_s"], float)
        zone = frames["pb_zone"]
        return t, [(frames["pb_mt"][k], frames["pb_flags"][k], zone) for k in range(len(t))]
    t, arrs = [], []
    for ts, src in frames:
        t.append(float(ts))
        arrs.append(tuple(np.array(a, copy=True) for a in _arrays(src)))
    return np.asarray(t, float), arrs


def check_animation_path(path):
    """The writer name for ``path`` (by its extension); AnimationError for an
    unknown extension or an MP4 without ffmpeg."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in ANIMATION_FORMATS:
        raise AnimationError(f"{path}: unknown animation format {ext or '(no extension)'!r}; "
                             f"use .gif (or .mp4 with ffmpeg installed)")
    name = ANIMATION_FORMATS[ext]
    if name == "ffmpeg":
        from matplotlib import animation
        exe = matplotlib.rcParams["animation.ffmpeg_path"]
        if shutil.which(exe) is None or not animation.writers.is_available("ffmpeg"):
            gif = os.path.splitext(path)[0] + ".gif"
            raise AnimationError(f"{path}: writing MP4 needs ffmpeg, which is not on PATH; "
                                 f"install ffmpeg (Debian: apt-get install ffmpeg) or write a "
                                 f"GIF instead: {gif}")
    return name


def pageblock_map_animation(frames, path, fps=4, title=None, max_rows=64, dpi=80):
    """Animate the pageblock map: one frame per snapshot, title showing the
    simulated time, legend with each class's pageblock count in that frame.

    ``frames``: the dict :func:`spbsim.report.snapshots.load_pageblock_series`
    returns, the path of a ``pageblocks_series.npz`` or of a results directory
    holding one, or a list of ``(t_s, src)`` with ``src`` as for
    :func:`pageblock_map`.  ``path`` ends in ``.gif`` (Pillow, always
    available) or ``.mp4`` (needs ffmpeg on PATH; AnimationError otherwise,
    before anything is drawn).  ``max_rows``: draw only the first
    superpageblocks.  Returns [path]; the file is written atomically.
    """
    from matplotlib import animation
    path = os.fspath(path)
    writer_name = check_animation_path(path)
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise AnimationError(f"fps {fps!r}: expected a positive number")
    t, arrs = _frames_from(frames)
    if not arrs:
        raise AnimationError(f"{path}: no pageblock snapshots to animate")
    per_frame = [spb_rows(*a) for a in arrs]
    n_all = per_frame[0][0].shape[0]
    n = min(n_all, max_rows) if max_rows else n_all
    height = min(2.6 + 0.22 * n, 12.0)    # room for the two-line title and the legend
    fig, ax = plt.subplots(figsize=(10, height))
    cmap = ListedColormap([c for _, c in PB_CLASSES])
    im = ax.imshow(per_frame[0][0][:n], cmap=cmap, vmin=-0.5, vmax=len(PB_CLASSES) - 0.5,
                   aspect="auto", interpolation="nearest")
    ax.set_yticks(range(n))
    ax.set_xlabel(f"pageblock within the superpageblock ({SUPERPAGEBLOCK_NR_PAGEBLOCKS} "
                  f"x 2 MiB per 1 GiB)", fontsize=8)
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.5, label=name)
               for name, c in PB_CLASSES]
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                    frameon=False)
    base = title or "pageblock map"
    if n < n_all:
        base += f" (first {n} of {n_all} superpageblocks)"
    fig.subplots_adjust(left=0.22, right=0.80, top=1 - 0.55 / height, bottom=0.5 / height)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    mw = animation.writers[writer_name](fps=fps)
    try:
        with mw.saving(fig, tmp, dpi):
            for k, (cls, labels) in enumerate(per_frame):
                cls = cls[:n]
                im.set_data(cls)
                ax.set_yticklabels(labels[:n], fontsize=6 if n > 20 else 8)
                ax.set_title(f"{base}\nt = {t[k]:g} s simulated (frame {k + 1} of "
                             f"{len(per_frame)})", fontsize=9)
                counts = np.bincount(cls.ravel(), minlength=len(PB_CLASSES))
                for txt, (name, _), c in zip(leg.get_texts(), PB_CLASSES, counts):
                    txt.set_text(f"{name} ({c:,})")
                mw.grab_frame()
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return [path]
