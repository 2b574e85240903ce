"""The ``compare`` and ``report`` click commands (registered in spbsim/cli.py),
and the options compare and sweep share (``policy_seed_options``).

Errors are raised as spbsim.errors.SpbsimError subclasses; spbsim.cli.main()
prints them as one line and exits 2.
"""
import click

from ..errors import SpbsimError
from ..policy import known_policies

__all__ = ["compare", "report", "policy_seed_options", "POLICY_HELP"]

#: the policies, for --policy help texts
POLICY_HELP = (", ".join(known_policies()) + "; an spb policy takes SPB switches after commas: "
               "spb:v1,pass_2d=false")


def policy_seed_options(policy_default):
    """The options `spbsim compare` and `spbsim sweep` share: --policy
    (repeatable, the first is the baseline), --seed, --seeds, --memory,
    --set and --duration (the last four as `spbsim run` has them)."""
    opts = [
        click.option("--policy", "policies", multiple=True, metavar="POLICY",
                     help="a policy (repeat; the first is the baseline of the % changes and "
                          f"paired deltas): {POLICY_HELP}  [default: {policy_default}]"),
        click.option("--seed", default=None, type=int,
                     help="the first seed (default: the scenario's)"),
        click.option("--seeds", default=1, show_default=True, type=int,
                     help="seeds per policy (and grid cell): the first seed and the next N-1"),
        click.option("--memory", default=None, help="override the scenario's memory size (1G..4T)"),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="override a scenario key in every run, e.g. scenario.memory=64G"),
        click.option("--duration", default=None, help="override the simulated duration, e.g. 60s"),
    ]

    def decorate(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return decorate


def run_overrides(sets, duration, seeds, memory=None):
    """--set, --memory and --duration as scenario overrides; SpbsimError for
    bad --seeds."""
    overrides = _parse_sets(sets)
    if memory is not None:
        overrides["scenario.memory"] = memory
    if duration is not None:
        overrides["scenario.duration"] = duration
    if seeds < 1:
        raise SpbsimError(f"--seeds {seeds}: need at least 1")
    return overrides


def seed_arg(seed, seeds):
    """--seed/--seeds as run_compare and run_sweep take them: a count from
    the scenario's seed, or the list seed..seed+seeds-1."""
    if seed is None:
        return seeds
    if seed < 0:
        raise SpbsimError(f"--seed {seed}: must be >= 0")
    return list(range(seed, seed + seeds))


def _parse_sets(sets):
    overrides = {}
    for item in sets:
        if "=" not in item:
            raise SpbsimError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v.strip()
    return overrides


@click.command()
@click.argument("scenario")
@policy_seed_options("stock, stock:defrag")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="comparison directory (default results/compare-<scenario>)")
@click.option("--jobs", default=2, show_default=True, type=int,
              help="runs at a time: the worker processes of a local dask cluster (1: in this "
                   "process)")
@click.option("--report/--no-report", "make_report", default=True, show_default=True,
              help="also write OUT/report.html")
def compare(scenario, policies, seed, seeds, memory, sets, duration, out_dir, jobs, make_report):
    """Run SCENARIO under several policies and seeds; print a comparison table.

    Each (policy, seed) writes OUT/<policy>/seed<N>/ (a results directory
    like `spbsim run`'s, plus pageblocks.npz).  Runs with the same seed see
    the same request stream (checked by its checksum).  The table (rows:
    metrics, columns: policies, mean ± 95 % interval and % change against
    the first policy) goes to the terminal and to OUT/compare.csv, .md, .json.
    """
    from ..scenario import load_scenario
    from .compare import run_compare
    overrides = run_overrides(sets, duration, seeds, memory)
    if jobs < 1:
        raise SpbsimError(f"--jobs {jobs}: need at least 1")
    policies = list(policies) or ["stock", "stock:defrag"]
    if out_dir is None:
        out_dir = f"results/compare-{load_scenario(scenario, overrides or None).name}"
    run_compare(scenario, policies, seeds=seed_arg(seed, seeds), out_dir=out_dir,
                overrides=overrides or None,
                jobs=jobs, progress=True, echo=click.echo)
    if make_report:
        from .html import write_report
        click.echo(f"report in {write_report(out_dir)}", err=True)
    click.echo(f"results in {out_dir}/ (compare.csv, compare.md, compare.json)", err=True)


@click.command()
@click.argument("directory", type=click.Path())
@click.option("--animate", "animate", default=None, metavar="PATH",
              help="also write the pageblock map animation to PATH: .gif (always works) or "
                   ".mp4 (needs ffmpeg); for a compare directory one file per policy, "
                   "PATH-<policy>.<ext>")
@click.option("--fps", default=4.0, show_default=True, type=float,
              help="frames per second of the animation")
@click.option("--animation/--no-animation", "embed_animation", default=True,
              show_default=True,
              help="embed the animated pageblock map (GIF) in report.html when the runs saved "
                   "pageblock snapshots")
def report(directory, animate, fps, embed_animation):
    """Write DIRECTORY/report.html: one self-contained page (figures, tables,
    scenario, parameters, summary, proc snapshots) for a run's results
    directory or a `spbsim compare` directory.  For a `spbsim sweep`
    directory: each metric against each grid axis (a line per policy, 95 %
    band over seeds), paired deltas against the first policy, and the
    compare table of every grid cell, also as DIRECTORY/sweep.md.

    A directory that is missing files or was written by another format
    version is reported in one line naming the file (exit status 2).
    """
    from .figures import check_animation_path
    from .html import write_animations, write_report
    if fps <= 0:
        raise SpbsimError(f"--fps {fps:g}: expected a positive number")
    if animate is not None:
        check_animation_path(animate)        # e.g. .mp4 without ffmpeg: before any work
    click.echo(write_report(directory, animation=embed_animation))
    if animate is not None:
        for path in write_animations(directory, animate, fps=fps):
            click.echo(path)
