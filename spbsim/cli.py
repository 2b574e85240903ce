"""Command line: ``spbsim run``, ``spbsim bench``, ``spbsim check``."""
import json
import sys

import click

from .errors import SpbsimError

__all__ = ["main"]


def _machine_options(f):
    opts = [
        click.option("--memory", default="16G", show_default=True, help="RAM size, 1G..4T"),
        click.option("--cpus", default=4, show_default=True, type=int, help="CPUs with per-cpu lists"),
        click.option("--kernel-version", "version", default="recent", show_default=True,
                     type=click.Choice(["recent", "6.12"]), help="stock allocator variant"),
        click.option("--defrag-mode/--no-defrag-mode", default=False, help="vm.defrag_mode"),
        click.option("--watermark-boost-factor", default=15000, show_default=True, type=int),
        click.option("--seed", default=1, show_default=True, type=int),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.group()
@click.version_option(package_name="spbsim")
def cli():
    """spbsim: a simulator of the Linux physical page allocator."""


@cli.command()
@_machine_options
@click.option("--policy", default="stock", show_default=True,
              help="placement policy (stock; spb presets are not built yet)")
@click.option("--ops", default=20_000_000, show_default=True, type=int,
              help="alloc/free operations after filling memory")
@click.option("--occupancy", default=0.9, show_default=True, type=float)
@click.option("--out", "out_dir", default="results/default", show_default=True,
              type=click.Path(file_okay=False), help="results directory")
@click.option("--check", is_flag=True, help="run the DEBUG_VM checker after every batch")
@click.option("--trace", "trace_n", default=0, type=int,
              help="also write the first N kmem tracepoint lines to trace.txt")
def run(memory, cpus, version, defrag_mode, watermark_boost_factor, seed, policy, ops,
        occupancy, out_dir, check, trace_n):
    """Run the built-in mixed workload and print a summary.

    The stream: 70% order-0 and orders 1-9 with halving probability; 80%
    movable, 15% unmovable, 5% reclaimable; memory held at --occupancy.
    """
    from tqdm import tqdm

    from .machine import Machine
    from .runner import run_mixed, summarize, write_results
    if policy != "stock":
        raise SpbsimError(f"--policy {policy!r}: only 'stock' is built so far "
                          f"(the superpageblock allocator is issue #4)")
    if not 0.05 <= occupancy <= 0.99:
        raise SpbsimError(f"--occupancy {occupancy}: allowed 0.05 to 0.99")
    if ops < 0:
        raise SpbsimError(f"--ops {ops}: must be >= 0")
    params = dict(memory=memory, cpus=cpus, version=version, defrag_mode=defrag_mode,
                  watermark_boost_factor=watermark_boost_factor, seed=seed, policy=policy,
                  ops=ops, occupancy=occupancy)
    _note_first_compile()
    mach = Machine(memory=memory, cpus=cpus, version=version, defrag_mode=defrag_mode,
                   watermark_boost_factor=watermark_boost_factor, seed=seed,
                   trace=trace_n > 0, trace_capacity=max(trace_n, 1))
    click.echo(f"spbsim: {memory} machine, policy {policy}, kernel {version}, {cpus} cpus, "
               f"seed {seed}", err=True)
    bar = tqdm(total=ops, unit="op", unit_scale=True, desc="mixed stream", file=sys.stderr,
               disable=None)
    last = [0]

    def progress(done, total):
        bar.update(done - last[0])
        last[0] = done

    info = run_mixed(mach, ops, seed=seed, occupancy=occupancy, check=check, progress=progress)
    bar.close()
    summary = summarize(mach, info)
    write_results(mach, out_dir, summary, params)
    if trace_n:
        from .observe.tracefmt import format_ev_log
        with open(f"{out_dir}/trace.txt", "w") as f:
            for line in format_ev_log(mach.trace_records()):
                f.write(line + "\n")
    _print_summary(mach, summary, out_dir)
    if info["interrupted"]:
        click.echo("interrupted: results so far were written", err=True)
        sys.exit(130)


def _note_first_compile():
    """numba caches compiled code; say so when none exists yet for this source."""
    from pathlib import Path

    from .mm.jit import cache_dir
    if not any(Path(cache_dir()).rglob("*.nbi")):
        click.echo("spbsim: first run: compiling the allocator with numba "
                   "(a few minutes, cached afterwards)...", err=True)


def _print_summary(mach, s, out_dir):
    hp = s["hugepages"]
    r = s["run"]
    click.echo(mach.buddyinfo(), nl=False)
    click.echo()
    click.echo(mach.pagetypeinfo().split("\n\n")[-1].rstrip("\n"))
    click.echo()
    click.echo(f"operations      {r['ops']:>12,}  ({r['ops'] / max(r['seconds'], 1e-9) / 1e6:.1f} M/s incl. fill)")
    click.echo(f"alloc failures  {r['alloc_failures']:>12,}")
    click.echo(f"free pages      {s['free_pages']:>12,}  of {s['managed_pages']:,} managed")
    click.echo(f"2 MB blocks     {hp['2m_free']:>12,} free now, {hp['2m_obtainable']:,} obtainable by compaction")
    click.echo(f"1 GB pages      {hp['1g_free']:>12,} free now, {hp['1g_obtainable']:,} obtainable by compaction")
    cen = s["census"]
    pol = sum(v["polluted"] for v in cen.values())
    click.echo(f"pageblocks      {sum(v['total'] for v in cen.values()):>12,} total, "
               f"{pol:,} polluted (mixed mobility), "
               f"{cen['Movable']['polluted']:,} of them Movable")
    sim = s["sim"]
    click.echo(f"fallbacks       claims {sim['sim_claim_success']:,} "
               f"(whole-block {sim['sim_claim_whole_block']:,}), steals {sim['sim_steal']:,}")
    click.echo(f"results in {out_dir}/")


@cli.command()
@click.option("--sizes", default="4G,256G", show_default=True, help="comma-separated machine sizes")
@click.option("--ops", default=10_000_000, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--cpus", default=4, show_default=True, type=int)
def bench(sizes, ops, seed, cpus):
    """The allocator benchmark: events/s, peak RSS, bytes of state per page."""
    from .bench import main as bench_main
    from .mm.geometry import parse_size
    size_list = [s.strip() for s in sizes.split(",") if s.strip()]
    for s in size_list:
        parse_size(s, "--sizes entry")
    bench_main(size_list, ops, seed, cpus, echo=click.echo)


def main(argv=None):
    """Entry point: user errors print one clear line and exit 2, no traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SpbsimError as e:
        click.echo(f"spbsim: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
