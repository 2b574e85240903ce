"""Comparing policies and reporting results.

- :mod:`spbsim.report.compare`  ``run_compare``: one scenario under several
  policies and seeds (paired: same request stream per seed), an mmtests
  compare-kernels style table (text, CSV, Markdown, JSON).
- :mod:`spbsim.report.figures`  the pageblock map, time series, A/B overlays,
  claim/steal bars (matplotlib, Agg, PNG + SVG).
- :mod:`spbsim.report.html`     ``write_report``: one self-contained report.html.
- :mod:`spbsim.report.cli_cmds` the ``compare`` and ``report`` click commands.
"""
