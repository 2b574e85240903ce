"""Command line: ``spbsim run``, ``compare``, ``sweep``, ``report``, ``replay``,
``validate``, ``record``, ``bench``, ``churn``."""
import sys

import click

from .errors import SpbsimError
from .report.cli_cmds import POLICY_HELP, policy_seed_options, run_overrides, seed_arg
from .report.cli_cmds import compare as _compare_cmd, report as _report_cmd

__all__ = ["main"]


def _machine_options(f):
    opts = [
        click.option("--memory", default="16G", show_default=True, help="RAM size, 1G..4T"),
        click.option("--cpus", default=4, show_default=True, type=int, help="CPUs with per-cpu lists"),
        click.option("--kernel-version", "version", default="recent", show_default=True,
                     type=click.Choice(["recent", "6.12", "6.1"]), help="stock allocator variant"),
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
@click.argument("scenario", default="devvm-256g")
@click.option("--policy", default=None,
              help=f"{POLICY_HELP}; default: the scenario's")
@click.option("--memory", default=None, help="override the scenario's memory size (1G..4T)")
@click.option("--seed", default=None, type=int, help="override the scenario's seed")
@click.option("--duration", default=None, help="override the simulated duration, e.g. 60s")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="override any scenario key, e.g. source.pagecache.rate=100MB/s")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="results directory (default results/<scenario>)")
@click.option("--check", is_flag=True, help="run the DEBUG_VM checker after every tick (slow)")
@click.option("--list", "list_only", is_flag=True, help="list the built-in scenarios and exit")
def run(scenario, policy, memory, seed, duration, sets, out_dir, check, list_only):
    """Run a scenario (a built-in name or a .toml file) and print a summary.

    Writes OUT/timeseries.parquet, summary.json, params.json, scenario.toml,
    proc/ snapshots in kernel format and the pageblock arrays at the end and
    over time (pageblocks.npz, pageblocks_series.npz).  Ctrl-C stops early and keeps a
    valid results directory.
    """
    from tqdm import tqdm

    from .engine.run import Simulation
    from .scenario import builtin_scenarios, load_scenario
    if list_only:
        for name, path in sorted(builtin_scenarios().items()):
            click.echo(f"{name:20s} {path}")
        return
    overrides = run_overrides(sets, duration, 1, memory)
    if seed is not None:
        overrides["scenario.seed"] = str(seed)
    if policy is not None:
        overrides["scenario.policy"] = policy
    sc = load_scenario(scenario, overrides or None)
    out_dir = out_dir or f"results/{sc.name}"
    from .policy import Policy
    Policy.parse(sc.policy)           # a bad policy fails before the compile banner
    _note_first_compile()
    sim = Simulation(sc, check=check)
    mm = f" (memory map {sc.memory_map.name})" if sc.memory_map is not None else ""
    click.echo(f"spbsim: {sc.name}: {sc.memory}{mm}, {sc.cpus} cpus, policy {sim.policy}, "
               f"kernel {sc.kernel_version}, {sc.duration_s:g} s simulated, seed {sc.seed}",
               err=True)
    text = open(sc.path).read() if sc.path else None
    params = {"scenario": sc.name, "policy": sim.policy, "seed": sc.seed, "memory": sc.memory,
              "overrides": overrides, "version": _version()}
    from .engine.rundir import run_into
    bar = tqdm(total=round(sc.duration_s, 3), unit="s", desc=sc.name, file=sys.stderr,
               disable=None, bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} s simulated "
                                        "[{elapsed}<{remaining}{postfix}]")

    def progress(t, total, n):
        bar.n = round(t, 3)
        bar.set_postfix_str(f"{n / 1e6:.1f} M requests", refresh=False)
        bar.refresh()

    sim.progress = progress
    summary = run_into(sim, out_dir, params, text)
    bar.close()
    _print_run_summary(sim.machine, summary, out_dir)
    if summary["interrupted"]:
        click.echo("interrupted: the results so far were written", err=True)
        sys.exit(130)


def _version():
    from . import __version__
    return __version__


def _print_run_summary(mach, s, out_dir):
    hp = s["hugepages"]
    click.echo(mach.buddyinfo(), nl=False)
    click.echo()
    click.echo(mach.pagetypeinfo().split("\n\n")[-1].rstrip("\n"))
    click.echo()
    vm = s["vmstat"]
    click.echo(f"requests        {s['requests']:>12,}  in {s['wall_s']:.1f} s "
               f"({(s['requests_per_s'] or 0) / 1e6:.2f} M/s), {s['simulated_s']:g} s simulated")
    click.echo(f"1 GB pages      {hp['1g_free']:>12,} free now, {hp['1g_obtainable']:,} obtainable "
               f"by compaction (of {mach.geometry.memory >> 30} GB)")
    g = s["hugetlb_1g"]
    if g["attempts"]:
        click.echo(f"hugetlb 1 GB    {g['success']:>12,} of {g['attempts']:,} requests succeeded, "
                   f"{g['migrated_pages']:,} pages migrated for them, "
                   f"{g['attempt_migrated_pages']:,} by all attempts "
                   f"({g['splits']:,} large blocks split"
                   + (f", {g['splits_refused']:,} splits refused: piece_capacity too small"
                      if g.get('splits_refused') else "") + ")")
    click.echo(f"2 MB blocks     {hp['2m_free']:>12,} free now, {hp['2m_obtainable']:,} obtainable")
    for zname, c in s["spb"].items():
        click.echo(f"SPBs {zname:<10} {c['total']:>12,} total: {c['tainted']:,} tainted "
                   f"(unmovable/reclaimable content), {c['clean']:,} clean, {c['empty']:,} empty")
    cen = s["census"]
    pol = sum(v["polluted"] for v in cen.values())
    click.echo(f"pageblocks      {sum(v['total'] for v in cen.values()):>12,} total, "
               f"{pol:,} polluted (mixed mobility), {cen['Movable']['polluted']:,} of them Movable")
    tz = s.get("taints")
    if tz:
        top = list(tz["pageblocks_polluted_by_source"].items())[:3]
        click.echo(f"polluted by     {tz['events']['pageblock_polluted']:>12,} fragmenting fallbacks "
                   f"into clean pageblocks"
                   + (": " + ", ".join(f"{k} {v:,}" for k, v in top) if top else "")
                   + " (taints.parquet)")
    if s["thp_fault_success_rate"] is not None:
        click.echo(f"THP faults      {vm['thp_fault_alloc']:>12,} ok, {vm['thp_fault_fallback']:,} "
                   f"fell back ({100 * s['thp_fault_success_rate']:.1f} % success)")
    click.echo(f"reclaim         {vm['pgsteal_kswapd']:>12,} pages by kswapd, "
               f"{vm['pgsteal_direct']:,} direct, allocstalls "
               f"{sum(vm[k] for k in vm if k.startswith('allocstall'))}")
    click.echo(f"compaction      {vm['pgmigrate_success']:>12,} pages migrated, stalls "
               f"{vm['compact_stall']:,} (success {vm['compact_success']:,}, "
               f"fail {vm['compact_fail']:,}), kcompactd wakeups {vm['compact_daemon_wake']:,}")
    sim = s["sim"]
    click.echo(f"fallbacks       claims {sim['sim_claim_success']:,} "
               f"(whole-block {sim['sim_claim_whole_block']:,}), steals {sim['sim_steal']:,}; "
               f"allocation failures {sim['sim_alloc_fail']:,}")
    sa = s.get("spb_allocator")
    if sa:
        oc = sa["outcomes"]
        click.echo(f"SPB allocator   {sa['preset']}: {sa['nr_tainted_spbs']:,} tainted SPBs on the lists, "
                   f"{sa['empty_spbs']:,} empty, {sa['stuck_spbs']:,} stuck (defrag cooldown long "
                   f"expired, never re-run)")
        click.echo("  passes        " + ", ".join(f"{k} {v:,}" for k, v in oc.items() if v))
        st = sa["stats"]
        click.echo(f"  defrag        {st['spb_defrag_runs']:,} runs ({st['spb_defrag_no_progress']:,} "
                   f"without progress), {st['spb_defrag_migrated']:,} pages migrated; kicks: "
                   f"transition {st['spb_defrag_kicks'] - st['spb_react_kicks'] - st['spb_last_chance_kicks']:,}, "
                   f"hot path {st['spb_react_kicks']:,}, last chance {st['spb_last_chance_kicks']:,}")
        click.echo(f"  search cost   {sa['spbs_visited_per_walk']} SPBs per __rmqueue_smallest, "
                   f"{st['spb_freelists_visited']:,} per-SPB free lists probed; taints by pass "
                   + ", ".join(f"{k} {v:,}" for k, v in sa["taint_by_pass"].items() if v))
    click.echo(f"results in {out_dir}/")


@cli.command()
@_machine_options
@click.option("--ops", default=20_000_000, show_default=True, type=int,
              help="alloc/free operations after filling memory")
@click.option("--occupancy", default=0.9, show_default=True, type=float)
@click.option("--out", "out_dir", default="results/churn", show_default=True,
              type=click.Path(file_okay=False), help="results directory")
@click.option("--check", is_flag=True, help="run the DEBUG_VM checker after every batch")
@click.option("--trace", "trace_n", default=0, type=int,
              help="also write the first N kmem tracepoint lines to trace.txt")
def churn(memory, cpus, version, defrag_mode, watermark_boost_factor, seed, ops,
          occupancy, out_dir, check, trace_n):
    """The benchmark's mixed stream without time: no reclaim, fill and churn.

    70% order-0 and orders 1-9 with halving probability; 80% movable, 15%
    unmovable, 5% reclaimable; memory held at --occupancy.
    """
    from tqdm import tqdm

    from .machine import Machine
    from .runner import run_mixed, summarize, write_results
    if not 0.05 <= occupancy <= 0.99:
        raise SpbsimError(f"--occupancy {occupancy}: allowed 0.05 to 0.99")
    if ops < 0:
        raise SpbsimError(f"--ops {ops}: must be >= 0")
    params = dict(memory=memory, cpus=cpus, version=version, defrag_mode=defrag_mode,
                  watermark_boost_factor=watermark_boost_factor, seed=seed, ops=ops,
                  occupancy=occupancy)
    _note_first_compile()
    mach = Machine(memory=memory, cpus=cpus, version=version, defrag_mode=defrag_mode,
                   watermark_boost_factor=watermark_boost_factor, seed=seed,
                   trace=trace_n > 0, trace_capacity=max(trace_n, 1))
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
        from .trace.tracefmt import format_ev_log
        with open(f"{out_dir}/trace.txt", "w") as f:
            for line in format_ev_log(mach.trace_records()):
                f.write(line + "\n")
    _print_summary(mach, summary, out_dir)
    if info["interrupted"]:
        click.echo("interrupted: results so far were written", err=True)
        sys.exit(130)


def _note_first_compile(precompile=True):
    """numba caches compiled code; say so when none exists yet for this source,
    and show progress whenever something is compiled (spbsim.compile_progress).
    ``precompile``: the model is compiled on this machine (not only on a
    remote scheduler's workers), so the helper may start."""
    from pathlib import Path

    from . import precompile
    from .compile_progress import install
    from .mm.jit import cache_dir
    precompile.enabled()            # a bad $SPBSIM_PRECOMPILE: one line before anything else
    if not any(Path(cache_dir()).rglob("*.nbi")):
        click.echo("spbsim: first run: compiling the allocator with numba "
                   "(a few minutes, cached afterwards)...", err=True)
    helper = _start_precompile() if precompile else None
    # with a helper this process compiles only part of the budget: no total shown
    install(expected=0 if helper else None)


_precompile = []


def _start_precompile():
    """On a cold cache, a second process compiles part of the model meanwhile
    (spbsim.precompile), stopped when this command ends.  Returns it or None."""
    if not _precompile:
        import atexit

        from . import precompile
        proc = precompile.start()
        _precompile.append(proc)
        if proc is not None:
            atexit.register(precompile.stop, proc)
            click.echo("spbsim: a second process compiles part of the model meanwhile "
                       "(SPBSIM_PRECOMPILE=0 turns it off)", err=True)
    return _precompile[0]


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
@click.argument("path", type=click.Path())
@click.option("--mode", type=click.Choice(["placement", "what-if", "agreement"]),
              default="placement", show_default=True,
              help="placement: apply each event at its traced pfn and compare buddyinfo with "
                   "the snapshots; what-if: the request stream through a simulated allocator; "
                   "agreement: at each buddy-level allocation of the placement replay, "
                   "where the simulated allocator would have taken it")
@click.option("--lenient", is_flag=True, help="count and skip malformed trace lines")
@click.option("--max-lines", default=None, type=int, help="stop after this many trace lines")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False),
              help="also write the result as JSON")
@click.option("--memory", default="1536M", show_default=True, help="what-if: machine size")
@click.option("--low-memory", default="512M", show_default=True, help="what-if: RAM below 4G")
@click.option("--cpus", default=2, show_default=True, type=int, help="what-if: cpus")
@click.option("--kernel-version", "version", default=None,
              type=click.Choice(["recent", "6.12", "6.1"]),
              help="allocator variant: what-if's model (default 6.12), agreement's peek "
                   "(default: the recording's kernel, from its manifest)")
@click.option("--defrag-mode/--no-defrag-mode", default=False, help="what-if: vm.defrag_mode")
def replay(path, mode, lenient, max_lines, json_out, memory, low_memory, cpus, version,
           defrag_mode):
    """Replay a recorded kmem trace.

    PATH is a recording directory (trace.txt[.xz|.zst|.gz], snapshots/,
    manifest.json; see docs/replay.md) or, for what-if, a trace file.
    Record your own with: trace-cmd record -e kmem:mm_page_alloc
    -e kmem:mm_page_free -e kmem:mm_page_free_batched
    -e kmem:mm_page_alloc_zone_locked -e kmem:mm_page_pcpu_drain
    -e kmem:mm_page_alloc_extfrag (and tracing_mark_write markers).
    """
    import json as _json
    from pathlib import Path
    p = Path(path)
    if not p.exists():
        raise SpbsimError(f"{path}: no such file or directory")
    trace = p
    if p.is_dir():
        trace = next((p / n for n in ("trace.txt.xz", "trace.txt.zst", "trace.txt.gz",
                                      "trace.txt") if (p / n).exists()), None)
        if trace is None:
            raise SpbsimError(f"{path}: no trace.txt[.xz|.zst|.gz] in this directory")
    if mode in ("placement", "agreement"):
        snaps = (p if p.is_dir() else p.parent) / "snapshots"
        if not snaps.is_dir():
            raise SpbsimError(f"{path}: {mode} replay needs the snapshots/ directory "
                              f"(with the start snapshot's kpageflags) beside the trace")
    if mode == "placement":
        from .trace.replay import format_table, replay_placement
        r = replay_placement(trace, snaps, lenient=lenient, progress=True, max_lines=max_lines)
        click.echo(format_table(r), nl=False)
    elif mode == "agreement":
        from .trace import agreement
        if version is None:
            version = agreement.version_for_recording(snaps.parent / "manifest.json")
        r = agreement.replay_agreement(trace, snaps, version=version, lenient=lenient,
                                       progress=True, max_lines=max_lines)
        click.echo(agreement.format_table(r), nl=False)
    else:
        from .trace import whatif
        snaps = (p if p.is_dir() else p.parent) / "snapshots"
        snaps = snaps if snaps.is_dir() else None
        r = whatif.replay_whatif(trace, dict(memory=memory, low_memory=low_memory, cpus=cpus,
                                             version=version or "6.12",
                                             defrag_mode=defrag_mode),
                                 lenient=lenient, progress=True, max_lines=max_lines,
                                 snapshots_dir=snaps)
        click.echo(whatif.format_table(r, snaps), nl=False)
        r = {k: v for k, v in r.items() if k != "machine"}
    if json_out:
        with open(json_out, "w") as f:
            _json.dump(r, f, indent=1, default=str)


@cli.command()
@click.argument("recording", type=click.Path())
@click.option("--policy", default=None,
              help="allocator model (default: from the recording's kernel version: 6.12 -> "
                   "stock:6.12, newer -> stock)")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="also write a results directory (validate.json, metrics.parquet, the "
                   "simulated /proc files per snapshot) for `spbsim report`")
@click.option("--json", "as_json", is_flag=True,
              help="print the whole result as JSON on stdout (the summary line goes to stderr)")
@click.option("--check", is_flag=True, help="run the DEBUG_VM checker at every snapshot (slow)")
@click.option("--max-lines", default=None, type=int, help="stop after this many trace lines")
@click.option("--fail-on-miss", is_flag=True,
              help="exit with status 1 when a snapshot misses a target")
@click.option("--memory", default=None, help="RAM size, only if the recording has no zoneinfo")
@click.option("--low-memory", default=None, help="RAM below 4G, only if the recording has no "
                                                 "zoneinfo")
@click.option("--cpus", default=None, type=int, help="CPUs, only if the recording does not say")
@click.option("--start-seed", default=None, type=int,
              help="draw the start state /proc does not show (per-cpu free_count, "
                   "alloc_factor and high-order flag; free-list order) with this seed")
@click.option("--ensemble", default=None, type=int, metavar="N",
              help="run as recorded and with N start-state draws (seeds 1..N) on dask, and "
                   "print the spread of every target")
@click.option("--workers", default=None, type=int,
              help="with --ensemble: local worker processes (default: the core count)")
@click.option("--scheduler", default=None,
              help="with --ensemble: a running dask scheduler (tcp://HOST:PORT) instead")
@click.option("--compaction-cost", default=None, metavar="US,NS|recorded",
              help="kcompactd's [SIM] cost: microseconds per migrated page and "
                   "nanoseconds per scanned page (default 50,100), or 'recorded' for "
                   "the medians of the recording's own compactions")
def validate(recording, policy, out_dir, as_json, check, max_lines, fail_on_miss, memory,
             low_memory, cpus, start_seed, ensemble, workers, scheduler, compaction_cost):
    """Replay RECORDING's request stream through the simulated allocator and
    compare it with the kernel's snapshots, per zone, against the fidelity
    targets (docs/validate.md).

    RECORDING is a directory with trace.txt[.xz|.zst|.gz], snapshots/
    (index.tsv and one folder of /proc files per snapshot) and optionally
    manifest.json and facts/, as `spbsim record` writes it.  The machine
    (zones, CPUs, kernel version) is read from the recording.
    """
    import json as _json

    from .policy import Policy
    from .trace import validate as V
    if policy is not None:
        Policy.parse(policy)
    cost = _compaction_cost_arg(compaction_cost)
    if ensemble is not None and cost is not None:
        raise SpbsimError("--ensemble: --compaction-cost takes a single validation")
    if ensemble is not None:
        bad = [n for n, v in (("--out", out_dir), ("--check", check),
                              ("--start-seed", start_seed), ("--fail-on-miss", fail_on_miss))
               if v is not None and v is not False]
        if bad:
            raise SpbsimError(f"--ensemble runs many validations: {', '.join(bad)} "
                                   f"takes a single one")
        from .trace import ensemble as E
        _note_first_compile(precompile=scheduler is None)
        ens = E.validate_ensemble(recording, ensemble, policy=policy, memory=memory,
                                  low_memory=low_memory, cpus=cpus, max_lines=max_lines,
                                  workers=workers, scheduler=scheduler,
                                  progress=sys.stderr.isatty())
        if as_json:
            click.echo(_json.dumps(ens, indent=1))
        else:
            click.echo(E.format_ensemble(ens), nl=False)
        return
    if workers is not None or scheduler is not None:
        raise SpbsimError("--workers and --scheduler go with --ensemble")
    if start_seed is not None and start_seed < 0:
        raise SpbsimError(f"--start-seed {start_seed}: must be >= 0")
    _note_first_compile()
    out = V.validate(recording, policy=policy, memory=memory, low_memory=low_memory, cpus=cpus,
                     max_lines=max_lines, progress=sys.stderr.isatty(), check=check,
                     detail=out_dir is not None, start_seed=start_seed,
                     compaction_cost=cost)
    for line in out["notes"]:
        click.echo(line, err=True)
    summary = V.format_summary(out)
    if as_json:
        from .results import _json_default
        click.echo(_json.dumps(V.jsonable(out), indent=1, default=_json_default))
        click.echo(summary, err=True)
    else:
        click.echo(V.format_table(out), nl=False)
        click.echo(summary)
    if out_dir is not None:
        V.write_results(out, out_dir)
        click.echo(f"results in {out_dir}/ (spbsim report {out_dir} draws the figures)",
                   err=True)
    if fail_on_miss and out["summary"]["within_targets"] < out["summary"]["snapshots"]:
        sys.exit(1)


def _compaction_cost_arg(text):
    """--compaction-cost: None, "recorded" or (us per migrated page, ns per
    scanned page)."""
    if text is None or text == "recorded":
        return text
    try:
        us, ns = (float(v) for v in text.split(","))
    except ValueError:
        raise SpbsimError(f"--compaction-cost {text!r}: expected US,NS (e.g. 50,100) "
                          f"or 'recorded'") from None
    if not (0 <= us <= 1_000_000 and 0 <= ns <= 1_000_000):
        raise SpbsimError(f"--compaction-cost {text!r}: each value 0 to 1000000")
    return us, ns


@cli.command(context_settings={"ignore_unknown_options": True,
                               "allow_interspersed_args": False})
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="recording directory (default rec-<date>-<time>)")
@click.option("--snapshot-every", default="2s", show_default=True,
              help="period of the /proc snapshots while COMMAND runs")
@click.option("--kpageflags", is_flag=True,
              help="also dump /proc/kpageflags at the start and end snapshots (compressed; "
                   "recommended: validate places reserved pages and classifies the memory in "
                   "use at the start with it)")
@click.option("--buffer-kb", default=65536, show_default=True, type=int,
              help="ftrace ring buffer per CPU (KiB)")
@click.option("--compress", type=click.Choice(["xz", "zst"]), default="zst", show_default=True,
              help="trace compression")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def record(out_dir, snapshot_every, kpageflags, buffer_kb, compress, command):
    """Record a recording `spbsim validate` reads, on this Linux host, while
    COMMAND runs (as root, with tracefs):  spbsim record -- COMMAND ARGS...

    Enables the kmem (and compaction, vmscan, migrate, oom) events, snapshots
    /proc/buddyinfo, pagetypeinfo, zoneinfo, vmstat and meminfo at the start,
    every --snapshot-every and at the end (with oracle_snap_begin/end markers
    in the trace), streams trace_pipe to trace.txt.zst (or .xz) and writes
    manifest.json and facts/.  The tracing state is restored afterwards, also
    on Ctrl-C.  The exit status is COMMAND's.
    """
    from .trace import record as R
    rc = R.record(list(command), out_dir=out_dir, snapshot_every=snapshot_every,
                  kpageflags=kpageflags, buffer_kb=buffer_kb, compress=compress,
                  echo=lambda s: click.echo(s, err=True))
    sys.exit(rc)


@cli.command()
@click.option("--sizes", default="4G,256G", show_default=True, help="comma-separated machine sizes")
@click.option("--ops", default=10_000_000, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--cpus", default=4, show_default=True, type=int)
@click.option("--policy", "policies", multiple=True, default=("stock",), show_default=True,
              help=f"allocator policy (repeatable): {POLICY_HELP}")
@click.option("--engine", is_flag=True,
              help="also run the default scenario at each size through the whole engine and "
                   "print its events/s against the allocator's, with where its wall time goes")
@click.option("--engine-duration", default="600s", show_default=True,
              help="simulated time of the --engine run")
def bench(sizes, ops, seed, cpus, policies, engine, engine_duration):
    """The allocator benchmark: events/s, peak RSS, bytes of state per page,
    free lists (and SPBs) searched per allocation; with --engine, the
    default scenario's events/s beside it."""
    from .bench import main as bench_main
    from .mm.geometry import parse_size
    from .policy import Policy
    size_list = [s.strip() for s in sizes.split(",") if s.strip()]
    for s in size_list:
        parse_size(s, "--sizes entry")
    for p in policies:
        Policy.parse(p)
    if engine:
        from .scenario import parse_time
        parse_time(engine_duration, "--engine-duration")     # a bad value: one line, exit 2
    for p in policies:
        bench_main(size_list, ops, seed, cpus, policy=p, echo=click.echo, engine=engine,
                   engine_duration=engine_duration)


@cli.command()
@click.argument("scenario")
@policy_seed_options("the scenario's")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="an axis (repeat for more): any key --set takes, e.g. memory=4G,8G,16G, "
                   "source.anon.rate=4000,8000 or spb.pass_2d=true,false")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="sweep directory (default results/sweep-<scenario>)")
@click.option("--workers", default=None, type=int,
              help="local worker processes, one run each at a time [default: the core count]")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="run on a running dask scheduler (tcp://HOST:PORT or tls://HOST:PORT) "
                   "instead of a local cluster")
@click.option("--tls-ca-file", default=None, type=click.Path(dir_okay=False),
              help="with a tls:// scheduler: the CA certificate")
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False),
              help="with a tls:// scheduler: this client's certificate")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False),
              help="with a tls:// scheduler: this client's private key")
@click.option("--dashboard/--no-dashboard", default=False, show_default=True,
              help="serve the local cluster's dask dashboard on 127.0.0.1:8787")
@click.option("--keep-runs", is_flag=True,
              help="also keep each run's results directory under OUT/runs/<cell>/")
@click.option("--retry-failed", is_flag=True, help="run failed cells again")
@click.option("--rerun", is_flag=True, help="run every cell again, ignoring earlier results")
def sweep(scenario, policies, seed, seeds, memory, sets, duration, grid, out_dir, workers, scheduler,
          tls_ca_file, tls_cert, tls_key, dashboard, keep_runs, retry_failed, rerun):
    """Run SCENARIO for every policy x seed x grid value on dask.distributed.

    One row per run goes to OUT/sweep.parquet (grid values, policy, seed,
    status, error, request checksum, wall time and every scalar of the
    run's summary) as runs finish; the same command again runs only the
    cells not finished yet.  A failed run is recorded with its error and
    the sweep goes on (exit status 1 at the end).  `spbsim report OUT`
    draws each metric against each grid axis.  See docs/sweep.md.
    """
    from .sweep import parse_grid, run_sweep
    overrides = run_overrides(sets, duration, seeds, memory)
    tls = {k: v for k, v in (("ca_file", tls_ca_file), ("cert", tls_cert), ("key", tls_key))
           if v is not None}
    if tls and not (scheduler or "").startswith("tls://"):
        raise SpbsimError("--tls-ca-file/--tls-cert/--tls-key need --scheduler tls://HOST:PORT")
    if out_dir is None:
        from .scenario import load_scenario
        out_dir = f"results/sweep-{load_scenario(scenario, overrides or None).name}"
    if scheduler is None:
        # the local cluster's workers compile on this machine: on a cold
        # cache a second process compiles part of the model meanwhile
        _start_precompile()
    r = run_sweep(scenario, policies, seed_arg(seed, seeds), parse_grid(grid), out_dir,
                  overrides or None,
                  workers=workers, scheduler=scheduler, keep_runs=keep_runs,
                  retry_failed=retry_failed, rerun=rerun, dashboard=dashboard, tls=tls or None)
    click.echo(f"{r['ok']} of {r['total']} runs ok, {r['failed']} failed; {r['ran']} run now, "
               f"{r['skipped']} done before; results in {r['path']}"
               + ("" if r["unpaired"] else
                  " (paired: one request checksum per grid cell and seed)"), err=True)
    if r["interrupted"]:
        click.echo("interrupted: the same command resumes the runs not finished", err=True)
        sys.exit(130)
    if r["failed"] or r["unpaired"]:
        sys.exit(1)


cli.add_command(_compare_cmd)
cli.add_command(_report_cmd)


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
