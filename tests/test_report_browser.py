"""The HTML report in a real headless browser (Debian's chromium + chromedriver
through selenium), for a comparison report and a single run's report: every
figure has loaded and is visible, every table has data rows, the console has
no errors and the browser requested nothing but the page's own file:// URL.

Skipped, saying why, without chromium, chromedriver or selenium; CI (.ci/run)
installs them.  SPBSIM_SCREENSHOT=1 also writes docs/report-screenshot.png.
"""
import json
import os
import shutil
import struct

import pytest
from workloads import TINY_SCENARIO

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-extensions"]
WINDOW = (1300, 1800)
DOCS_SHOT = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "report-screenshot.png")


def _missing():
    if CHROMIUM is None:
        return "chromium is not on PATH (Debian: apt-get install chromium chromium-driver)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"{CHROMEDRIVER} is missing (Debian: apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None,
                                reason=f"headless-browser test of the report: {_missing()}")

SCENARIO = TINY_SCENARIO


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """(compare report, single-run report) of a 2-policy, 1-seed tiny run."""
    from spbsim.report.compare import run_compare
    from spbsim.report.html import write_report
    d = tmp_path_factory.mktemp("browser")
    (d / "tiny.toml").write_text(SCENARIO)
    out = d / "cmp"
    run_compare(str(d / "tiny.toml"), ["stock", "stock:defrag"], seeds=1, out_dir=str(out),
                jobs=1, progress=False)
    return {"compare": (out, write_report(str(out))),
            "run": (out / "stock" / "seed1", write_report(str(out / "stock" / "seed1")))}


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # the system chromedriver: selenium-manager (which downloads drivers) is not used
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(120)
    yield drv
    drv.quit()


def _requests(drv):
    """URLs the page requested, from the DevTools Network events."""
    urls = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


FIGURES_JS = """
return Array.from(document.querySelectorAll('img, svg')).map(function (el) {
  var r = el.getBoundingClientRect();
  var cs = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), alt: el.getAttribute('alt') || '',
          scheme: el.tagName === 'IMG' ? el.src.split(':')[0] : 'inline',
          complete: el.tagName === 'IMG' ? el.complete : true,
          natural: el.tagName === 'IMG' ? el.naturalWidth * el.naturalHeight : -1,
          w: r.width, h: r.height, display: cs.display, visibility: cs.visibility,
          opacity: parseFloat(cs.opacity),
          visible: el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})};
});
"""

TABLES_JS = """
return Array.from(document.querySelectorAll('table')).map(function (t) {
  return {cls: t.className, rows: t.rows.length,
          data_rows: Array.from(t.rows).filter(function (r) {
            return r.querySelector('td') !== null; }).length,
          cols: t.rows.length ? t.rows[0].cells.length : 0};
});
"""


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    return struct.unpack(">II", head[16:24])


def _names_polluters(summary):
    t = summary.get("taints") or {}
    return int(any(t.get(k) for k in ("pageblocks_polluted_by_source",
                                      "polluted_now_by_source", "spbs_tainted_by_source")))


@pytest.mark.parametrize("which", ["compare", "run"])
def test_report_in_headless_chromium(reports, driver, which, tmp_path):
    d, page = reports[which]
    url = "file://" + os.path.abspath(page)
    driver.get_log("performance")                      # drop earlier pages' events
    driver.get(url)
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.title.startswith("spbsim ")

    # every figure loaded and visible
    figs = driver.execute_script(FIGURES_JS)
    on_disk = sorted(os.listdir(d / "figures"))
    n_png = sum(n.endswith(".png") for n in on_disk)
    n_gif = sum(n.endswith(".gif") for n in on_disk)
    assert n_png >= 3 and n_gif >= 1, on_disk
    imgs = [f for f in figs if f["tag"] == "img"]
    assert len(imgs) == n_png + n_gif, (figs, on_disk)
    for f in figs:
        assert f["complete"] and f["natural"] != 0, f"figure not loaded: {f}"
        assert f["w"] > 100 and f["h"] > 50, f"figure has no size: {f}"
        assert f["visible"] and f["display"] != "none" and f["visibility"] == "visible" \
            and f["opacity"] > 0, f"figure not visible: {f}"
    assert {f["scheme"] for f in imgs} == {"data"}
    assert sum("over simulated time" in f["alt"] for f in imgs) == n_gif

    # every table present, with data rows
    tables = driver.execute_script(TABLES_JS)
    assert tables, "no tables"
    for t in tables:
        assert t["data_rows"] >= 1 and t["cols"] >= 2, f"empty table: {t}"
    kinds = [t["cls"] for t in tables]
    if which == "compare":
        assert kinds[0] == "compare"
        meta = json.loads((d / "compare.json").read_text())
        assert tables[0]["data_rows"] >= 10
        # one summary and one parameter table per run, and a "who polluted
        # it" table for each run whose taint log names a source
        n_runs = sum(len(v) for v in meta["runs"].values())
        summaries = [json.loads(p.read_text()) for p in d.glob("*/seed*/summary.json")]
        assert len(summaries) == n_runs
        assert kinds.count("kv") == 2 * n_runs + sum(map(_names_polluters, summaries))
    else:
        s = json.loads((d / "summary.json").read_text())
        assert kinds.count("kv") == 2 + _names_polluters(s)

    # no console errors, and no request but the page itself
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
    urls = _requests(driver)
    assert url in urls, f"the DevTools log did not capture the page load: {urls}"
    outside = [u for u in urls if u != url and not u.startswith("data:")]
    assert not outside, f"the report requested other resources: {outside}"
    res = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) {return e.name;})")
    assert [u for u in res if not u.startswith("data:")] == []

    # a screenshot of the top of the page
    shot = tmp_path / "shot.png"
    assert driver.save_screenshot(str(shot))
    w, h = _png_size(shot)
    assert w > 600 and h > 400
    if which == "compare" and os.environ.get("SPBSIM_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_SHOT)
