"""HTML building blocks shared by the report pages (single run, compare,
sweep, validate): escaping, inline images, tables, the page frame."""
from __future__ import annotations

import base64
import html
import math
import os

_CSS = """
body{font-family:sans-serif;margin:1.5em;max-width:1300px;color:#222}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.8em}
h3{font-size:1.05em}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}
th,td{border:1px solid #bbb;padding:2px 8px}td.n{text-align:right;font-family:monospace}
th{background:#eee}pre{background:#f6f6f6;border:1px solid #ddd;padding:6px;overflow:auto;
font-size:0.8em;max-height:40em}img{max-width:100%;border:1px solid #eee}
.better{color:#1b5e20}.worse{color:#b71c1c}.note{color:#666;font-size:0.9em}
"""


def _e(x):
    return html.escape(str(x), quote=True)


def _img(path, alt):
    gif = path.endswith(".gif")
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    beside = "" if gif else ", SVG beside it"
    return (f'<figure><img alt="{_e(alt)}" src="data:image/{"gif" if gif else "png"};base64,'
            f'{data}"><figcaption class=note>{_e(alt)} ({_e(os.path.basename(path))}{beside})'
            f"</figcaption></figure>")


def _pre(text):
    return f"<pre>{_e(text)}</pre>"


def _fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.4f}" if abs(x) < 10 and not x.is_integer() else f"{x:,.2f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _f(x):
    if x is None:
        return math.nan
    if isinstance(x, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(x, math.nan)
    return float(x)


def _table_html(table):
    pols = table["policies"]
    h = ["<table class=compare><tr><th>metric</th>"
         + "".join(f"<th>{_e(p)}</th>" for p in pols) + "</tr>"]
    for r in table["rows"]:
        h.append(f"<tr><td>{_e(r['metric'])}</td>")
        for i, p in enumerate(pols):
            c = r["cells"][p]
            s = _fmt(_f(c.get("mean")))
            ci = _f(c.get("ci95"))
            if c.get("n", 0) > 1 and not math.isnan(ci):
                s += f" ± {_fmt(ci)}"
            cls = ""
            if i > 0:
                d = _f(c.get("delta_pct"))
                if math.isnan(d):
                    s += " (n/a)"
                else:
                    s += f" ({d:+.2f}%)"
                    hib = r.get("higher_is_better")
                    if hib is not None and d != 0:
                        cls = " better" if (d > 0) == hib else " worse"
            h.append(f"<td class='n{cls}'>{_e(s)}</td>")
        h.append("</tr>")
    h.append("</table>")
    return "".join(h)


def _page(title, body):
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1>{body}</body></html>\n")
