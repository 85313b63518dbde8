"""The `stardag` command. Imports stay light: Ray, torch and transformers load only when a
stage has to run."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable

import click

from .errors import StardagError

STORE = click.option(
    "--store",
    metavar="URI",
    help="Store root (default: $STARDAG_STORE, the spec's `store:`, or .stardag/ beside the spec).",
)
SET = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key, e.g. --set loop.iterations=2 (repeatable).",
)
SPEC = click.argument("spec", type=click.Path(dir_okay=False))


SWEEP = click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Run (or compare) each value of KEY; several --sweep give the grid. Commas inside "
    "[...], {...} or quotes do not split: --sweep 'stages.base.params.mix={1: 1.0},{1: 0.5}'.",
)


def _set_timeout(ctx, param, value):
    if value is not None:
        import os

        os.environ["STARDAG_TIMEOUT"] = f"{value:g}"


TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    expose_value=False,
    callback=_set_timeout,
    is_eager=True,
    help="Seconds a store or Ray cluster may take to answer before the "
    "command gives up (default: $STARDAG_TIMEOUT or 30).",
)


def _errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .interrupt import cause, install

        install()
        try:
            return fn(*args, **kwargs)
        except StardagError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt as e:
            stop = cause(e)
            click.echo(f"{stop or 'interrupted'}; finished stages stay cached", err=True)
            sys.exit(stop.exit_code if stop else 130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stardag")
def main():
    """stardag: declarative dataflow pipelines on Ray, cached stage by stage.

    \b
    Example:
      stardag plan pipelines/star.yaml
      stardag run pipelines/star.yaml
      stardag report pipelines/star.yaml
    """


@main.command()
@SPEC
@SET
@click.option(
    "--force",
    multiple=True,
    metavar="STAGE",
    help="Re-run STAGE (all iterations, or STAGE@N) even if cached.",
)
@click.option("--until", multiple=True, metavar="STAGE", help="Run only STAGE and what it needs.")
@STORE
@click.option(
    "--address", metavar="ADDR", help="Join an existing Ray cluster instead of starting one."
)
@click.option(
    "--executor",
    type=click.Choice(["ray", "local"]),
    default="ray",
    show_default=True,
    help="`local` runs stages one by one in this process, without Ray.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print Ray's, Ray Train's and the libraries' output too (by default it goes to a "
    "log file under the store's runs/).",
)
@SWEEP
@click.option(
    "--track",
    "tracks",
    multiple=True,
    metavar="TRACKER",
    help="Log the run to an experiment tracker: mlflow (pip install 'stardag[mlflow]'; "
    "a SQLite store in mlruns/ beside the spec unless the spec's `tracking:` or "
    "$MLFLOW_TRACKING_URI says otherwise), or module:Class.",
)
@TIMEOUT
@_errors
def run(spec, overrides, force, until, store, address, executor, quiet, verbose, sweeps, tracks):
    """Run a pipeline: compute what is not cached, reuse the rest. With --sweep (or a
    `sweep:` block in the spec), run every point of the grid at once: their independent
    stages side by side on Ray, every stage they have in common (same key) computed once.

    \b
    Example:
      stardag run pipelines/star.yaml --set loop.iterations=2 --force train@2
      stardag run pipelines/star.yaml --sweep loop.stages.train.params.lr=1e-3,2e-3
      stardag run pipelines/star.yaml --sweep loop.iterations=2,4 \\
          --sweep stages.problems.params.seed=0,1          # a 2 x 2 grid
      stardag run pipelines/star.yaml --track mlflow   # then: mlflow ui \\
          --backend-store-uri sqlite:///pipelines/mlruns/mlflow.db
    """
    from . import api
    from .humanize import seconds
    from .spec import load_spec

    loaded = load_spec(spec, overrides)
    declared = loaded.spec
    if tracks or declared.tracking:
        _trackers(spec, declared.tracking, tracks)  # a bad tracker fails before the run
    if sweeps or declared.sweep:
        _run_sweep(
            spec, overrides, sweeps, store, force, until, address, executor, quiet, verbose, tracks
        )
        return
    t0 = time.monotonic()
    result = api.run(
        spec, overrides, store, force, until, address, executor, not quiet, verbose, loaded=loaded
    )
    computed = result.computed()
    click.echo(
        f"{result.spec}: {len(result.nodes)} stages, {len(computed)} computed, "
        f"{len(result.nodes) - len(computed)} cached, {seconds(time.monotonic() - t0)}",
        err=True,
    )
    if tracks or declared.tracking:
        _track(spec, overrides, store, result, declared.tracking, tracks)


def _trackers(spec, block, names):
    from pathlib import Path

    from . import tracking

    return tracking.trackers(block, names, Path(spec).absolute().parent)


def _track(spec, overrides, store, result, block, names, label=None):
    """Log a finished run to its trackers, from what the store holds."""
    from . import api, tracking

    ld = api.load(spec, overrides, store)
    run = tracking.collect(ld, result, overrides, label)
    for tracker in _trackers(spec, block, names):
        click.echo(tracker.log(run), err=True)


def _run_sweep(
    spec, overrides, sweeps, store, force, until, address, executor, quiet, verbose, tracks
):
    import shlex

    from . import humanize, sweep
    from .spec import load_spec

    t0 = time.monotonic()
    block = load_spec(spec, overrides).spec.tracking

    def ended(point, result, seconds):
        if tracks or block:
            _track(spec, [*overrides, *point], store, result, block, tracks, sweep.label(point))
        computed = result.computed()
        click.echo(
            f"{result.spec} [{sweep.label(point)}]: {len(result.nodes)} stages, "
            f"{len(computed)} computed, {len(result.nodes) - len(computed)} cached, "
            f"{humanize.seconds(seconds)}",
            err=True,
        )

    results = sweep.run(
        spec, overrides, sweeps, store, force, until, address, executor, not quiet, ended, verbose
    )
    computed = sum(len(r.computed()) for _, r in results)
    again = "".join(f" --sweep {shlex.quote(s)}" for s in sweeps) + "".join(
        f" --set {shlex.quote(o)}" for o in overrides
    )
    click.echo(
        f"sweep: {len(results)} points, {computed} stages computed in all, "
        f"{humanize.seconds(time.monotonic() - t0)}; compare them: stardag compare {spec}{again}",
        err=True,
    )


@main.command()
@SPEC
@SET
@click.option("--force", multiple=True, metavar="STAGE")
@click.option("--until", multiple=True, metavar="STAGE")
@STORE
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list of {stage, iteration, status, cause}.",
)
@TIMEOUT
@_errors
def plan(spec, overrides, force, until, store, as_json):
    """Show, per stage and iteration, whether it is cached or will run, and why.

    \b
    Causes: new, code (naming each definition that changed), libraries (with
    `libraries_in_key: true`), params, inputs, forced, missing.
    Example:
      stardag plan pipelines/star.yaml --set loop.stages.train.params.lr=1e-3
    """
    from . import api

    entries = api.plan(spec, overrides, store, force, until)
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=1))
        return
    width = max((len(e.node) for e in entries), default=10)
    for e in entries:
        if e.status == "cached":
            click.echo(f"  {e.node:<{width}}  cached")
        else:
            more = (
                f"\n  {'':<{width}}          ... {len(e.details) - 8} more"
                if len(e.details) > 8
                else ""
            )
            click.echo(
                f"  {e.node:<{width}}  run     ({', '.join(e.causes)})"
                + "".join(f"\n  {'':<{width}}          {d}" for d in e.details[:8])
                + more
            )
        for note in e.notes:
            click.echo(f"  {'':<{width}}          note: {note}")
    n = sum(e.status == "run" for e in entries)
    click.echo(f"{n} to run, {len(entries) - n} cached")


@main.command()
@SPEC
@click.argument("stage")
@click.option("--iteration", "-i", type=int, help="Iteration of a loop stage (default: last).")
@click.option("--output", "-o", help="Which output, for stages with several.")
@click.option(
    "--head", "-n", type=click.IntRange(min=0), default=10, show_default=True, help="Rows to print."
)
@click.option(
    "--to",
    "to_file",
    type=click.Path(dir_okay=False),
    help="Write all rows to FILE (.parquet, .csv, .jsonl or .json).",
)
@SET
@STORE
@TIMEOUT
@_errors
def show(spec, stage, iteration, output, head, to_file, overrides, store):
    """Print rows of a stage's artifact (or the files of a model).

    \b
    Example:
      stardag show pipelines/star.yaml samples --iteration 2 --head 5
    """
    from pathlib import Path

    import polars as pl

    from . import api

    value = api.read(spec, stage, iteration, output, overrides, store)
    if isinstance(value, Path) and to_file:
        from .errors import SpecError

        raise SpecError(
            f"stage {stage!r} is a model; write it out with "
            f"`stardag export {spec} {stage} --to DIR` (a Hugging Face directory)",
            f"--to {to_file}",
        )
    if isinstance(value, Path):
        click.echo(str(value))
        for p in sorted(value.rglob("*")):
            if p.is_file():
                click.echo(f"  {p.relative_to(value)}  {p.stat().st_size:,} bytes")
        return
    if to_file:
        writers: dict[str, Callable[[str], object]] = {
            ".parquet": value.write_parquet,
            ".csv": value.write_csv,
            ".jsonl": value.write_ndjson,
            ".json": value.write_json,
        }
        suffix = Path(to_file).suffix
        if suffix not in writers:
            raise StardagError(f"--to: unknown file type {suffix!r} (use {', '.join(writers)})")
        if not Path(to_file).absolute().parent.is_dir():
            raise StardagError(f"--to {to_file}: directory {Path(to_file).parent} does not exist")
        try:
            writers[suffix](to_file)
        except OSError as e:
            raise StardagError(f"--to {to_file}: cannot write: {e.strerror or e}") from None
        click.echo(f"wrote {value.height} rows to {to_file}", err=True)
        return
    with pl.Config(tbl_rows=head, fmt_str_lengths=120, tbl_width_chars=160, tbl_cols=-1):
        click.echo(value.head(head))
    click.echo(f"{value.height} rows", err=True)


@main.command()
@SPEC
@click.argument("stage")
@click.option("--iteration", "-i", type=int, help="Iteration of a loop stage (default: last).")
@click.option("--output", "-o", help="Which output, for stages with several.")
@click.option(
    "--to",
    "to_dir",
    required=True,
    type=click.Path(),
    metavar="DIR",
    help="The directory to write (must be empty or absent, unless --force).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet", "hf"]),
    help="For a dataset: data.jsonl (default), data.parquet, or a `datasets` "
    "save_to_disk directory (hf; needs `pip install 'stardag[hf]'`). A model is always "
    "a Hugging Face directory.",
)
@click.option("--force", is_flag=True, help="Replace DIR if it exists and is not empty.")
@SET
@STORE
@TIMEOUT
@_errors
def export(spec, stage, iteration, output, to_dir, fmt, force, overrides, store):
    """Write a stage's artifact out of the store: a model as a plain Hugging Face
    directory (config, safetensors, tokenizer: `from_pretrained(DIR)` loads it), a dataset
    as JSONL, Parquet or a Hugging Face `datasets` directory. Beside it, card.json and
    README.md give its spec, stage, key, params and inputs.

    \b
    Example:
      stardag export pipelines/star.yaml train --iteration 2 --to out/star-train-2
      stardag export pipelines/star.yaml examples --to out/examples --format parquet
      stardag export pipelines/star.yaml examples --to out/examples-hf --format hf
    """
    from .export import export as export_

    card = export_(spec, stage, to_dir, iteration, output, fmt, force, overrides, store)
    what = f"{card['rows']} rows" if card["kind"] == "dataset" else "model"
    click.echo(f"wrote {what} ({card['format']}) of {card['key'][:12]} to {to_dir}", err=True)


@main.command()
@SPEC
@SET
@click.option("--mermaid", is_flag=True, help="Print a Mermaid flowchart.")
@_errors
def dag(spec, overrides, mermaid):
    """Print the compiled graph (the loop unrolled).

    \b
    Example:
      stardag dag pipelines/star.yaml --mermaid > dag.md
    """
    from . import api

    graph = api.load(spec, overrides).graph
    if mermaid:
        click.echo("flowchart TD")
        ids = {n: f"n{i}" for i, n in enumerate(graph.nodes)}
        for node in graph.nodes.values():
            click.echo(f'  {ids[node.id]}["{node.id}<br/><small>{node.op_ref}</small>"]')
        for node in graph.nodes.values():
            for inp, (src, out) in node.inputs.items():
                click.echo(f"  {ids[src]} -->|{out}->{inp}| {ids[node.id]}")
        return
    for node in graph.nodes.values():
        click.echo(f"{node.id}  [{node.op_ref}]")
        for inp, (src, out) in node.inputs.items():
            click.echo(f"  <- {inp}: {src}.{out}")


@main.command()
@SPEC
@SET
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: {spec: {...}, origins: {key.path: where}}."
)
@_errors
def config(spec, overrides, as_json):
    """Print the spec as it runs: after `extends` and every --set, each value followed by
    the file:line (or the --set) it came from. The spec is validated as `run` would.

    \b
    Mappings: the spec's structure (stages, a stage, its params, inputs and resources,
    the loop) merges key by key; a value that is a mapping (a param such as `mix`)
    replaces whole; null deletes a key. The same rule for `extends` and --set.

    \b
    Example:
      stardag config pipelines/gsm8k_cpu.yaml
      stardag config pipelines/star.yaml --set "stages.base.params.mix={1: 0.5, 2: 0.5}"
      stardag config pipelines/star.yaml --json
    """
    from . import resolved
    from .graph import compile_spec
    from .spec import load_spec

    loaded = load_spec(spec, overrides)
    compile_spec(loaded)  # the operators' params are checked too
    if as_json:
        out = {"spec": loaded.raw, "origins": resolved.origins(loaded)}
        click.echo(json.dumps(out, indent=1, default=str))
        return
    click.echo(resolved.to_yaml(loaded), nl=False)


@main.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@STORE
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list of {spec, started, finished, wall_s, status, overrides, "
    "computed, cached, failed, spec_file}.",
)
@click.option("--last", "-n", type=click.IntRange(min=1), metavar="N", help="Only the last N.")
@_errors
def runs(spec, store, as_json, last):
    """List past runs, oldest first: when, status (ok, failed, stopped), stages computed
    and cached, wall time, the --set overrides, and the failure. Each run's record (with
    its resolved spec) is a JSON file under the store's runs/<spec name>/.

    \b
    Example:
      stardag runs pipelines/star.yaml              # the runs of this spec's name
      stardag runs --store .stardag --last 5        # the last runs of every spec
      stardag runs pipelines/star.yaml --json
    """
    from . import history

    st, name = history.store_of(spec, store)
    rows = history.runs(st, name)[-last if last else 0 :]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if rows:
        click.echo(history.table(rows))
    click.echo(f"{len(rows)} runs in {st.uri}", err=True)


@main.command()
@click.option(
    "--keep",
    "keep",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="SPEC",
    help="Keep every artifact this spec reaches (repeatable).",
)
@STORE
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, delete nothing.")
@_errors
def gc(keep, store, dry_run):
    """Delete the artifacts that none of the given specs reaches. Kept: everything a run of
    a kept spec would use, including the work below a stage whose artifact is missing
    (re-running it gives the same bytes). The store cleaned is printed first; with
    $STARDAG_STORE set and a spec naming another `store:`, pass --store to choose.

    \b
    Example:
      stardag gc --keep pipelines/star.yaml --keep pipelines/star_steps.yaml
      stardag gc --keep pipelines/star.yaml --dry-run     # list what would go
    """
    from . import api

    out = api.gc(keep, store=store, dry_run=dry_run)
    click.echo(f"store: {out.store}")
    verb = "would delete" if dry_run else "deleted"
    for d in sorted(
        out.deleted, key=lambda d: (str(d["spec"]), str(d["stage"]), d["iteration"] or 0)
    ):
        where = f"{d['stage']}@{d['iteration']}" if d["iteration"] is not None else d["stage"]
        click.echo(f"  {verb} {d['key'][:12]}  {d['spec']}/{where}  {_size(d['size'])}")
    freed = "would free" if dry_run else "freed"
    click.echo(
        f"{len(out.deleted)} artifacts {'to delete' if dry_run else 'deleted'}, "
        f"{out.kept} kept; {freed} {_size(out.freed)}"
    )


@main.command()
@SPEC
@SET
@STORE
@click.option("--stage", help="The loop stage with the metrics (default: the one that has them).")
@click.option("--base", help="The stage outside the loop giving iteration 0 (default: found).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: {metrics: how each kind is shown, iterations: [{iteration, "
    "headline, <headline kind>, n, ci95, by_slice, <other kinds>, training}]}.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Where to write the PNG plot (default: <spec name>-report.png here).",
)
@click.option("--no-plot", is_flag=True, help="Write no plot.")
@TIMEOUT
@_errors
def report(spec, overrides, store, stage, base, as_json, plot, no_plot):
    """The metrics per iteration, as the operators declare them, as a table and a PNG plot:
    the headline score per slice with n and 95% interval, the other kinds, the training loss.

    \b
    Example:
      stardag report pipelines/star.yaml --plot docs/star.png
    """
    from pathlib import Path

    from . import report as rep

    data = rep.collect(spec, overrides, store, stage, base)
    if as_json:
        click.echo(
            json.dumps({"metrics": data["metrics"], "iterations": data["iterations"]}, indent=1)
        )
    else:
        click.echo(rep.table(data))
    if not no_plot and data["iterations"]:
        path = Path(plot or f"{data['spec']}-report.png")
        if not path.absolute().parent.is_dir():
            raise StardagError(f"--plot {path}: directory {path.parent} does not exist")
        try:
            rep.plot(data, path)
        except OSError as e:
            raise StardagError(f"--plot {path}: cannot write: {e.strerror or e}") from None
        click.echo(f"plot: {path}", err=True)


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@SET
@SWEEP
@STORE
@click.option("--slice", "where", metavar="SLICE", help="Head the table with this slice's score.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: {variants: [{label, spec, overrides, iterations, keys, not_computed, "
    "command}], stages: {node: [same letter = same key, per variant]}}.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Write a PNG: a panel per variant (with --slice: that slice, all variants on one).",
)
@TIMEOUT
@_errors
def compare(specs, overrides, sweeps, store, where, as_json, plot):
    """Variants side by side, iteration by iteration: their metrics (as `report` shows them),
    the seconds their stages took, and which stages they share (same key, one artifact).
    Reads the store only and runs nothing; stages not computed are listed with the command
    that computes them. --set applies to every spec; --sweep makes a variant of each spec
    per value.

    \b
    Example:
      stardag compare pipelines/star.yaml pipelines/star_steps.yaml
      stardag compare pipelines/star.yaml --sweep loop.stages.train.params.lr=1e-3,2e-3
      stardag compare pipelines/star*.yaml --slice 5 --plot variants.png --json
    """
    from pathlib import Path

    from . import compare as cmp

    data = cmp.collect(specs, overrides, sweeps, store)
    if as_json:
        click.echo(json.dumps(data, indent=1))
    else:
        click.echo(cmp.table(data, where or "all"))
    if plot:
        path = Path(plot)
        if not path.absolute().parent.is_dir():
            raise StardagError(f"--plot {path}: directory {path.parent} does not exist")
        try:
            cmp.plot(data, path, where)
        except OSError as e:
            raise StardagError(f"--plot {path}: cannot write: {e.strerror or e}") from None
        click.echo(f"plot: {path}", err=True)


@main.command(name="ls")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@STORE
@TIMEOUT
@_errors
def ls_(spec, store):
    """List the store's artifacts: stage, kind, rows, size, age.

    \b
    Example:
      stardag ls pipelines/star.yaml      # the store that spec uses
      stardag ls --store .stardag
    """
    from pathlib import Path

    from .api import store_uri
    from .store import Store

    if spec is None and store is None:
        raise StardagError("give a spec or --store")
    listed = Store(store if store is not None else store_uri(Path(spec).absolute(), None, None))
    if spec and store is None:
        from . import api

        listed = api.load(spec).store
    rows = sorted(listed.artifacts(), key=lambda m: m.get("created", 0))
    now = time.time()
    total = 0
    for m in rows:
        size = sum(f["size"] for f in m["files"].values())
        total += size
        node = m.get("stage", "?") + (f"@{m['iteration']}" if m.get("iteration") else "")
        kinds = ",".join(
            f"{k}:{v['kind']}" + (f"[{v['rows']}]" if "rows" in v else "")
            for k, v in m.get("outputs", {}).items()
        )
        click.echo(
            f"{m['key'][:12]}  {m.get('spec', '?'):<16} {node:<22} {kinds:<36} "
            f"{_size(size):>9}  {_age(now - m.get('created', now))}"
        )
    click.echo(f"{len(rows)} artifacts, {_size(total)}", err=True)


JOB_ADDRESS = click.option(
    "--address",
    metavar="URL",
    help="The cluster's job server, "
    "http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS).",
)


@main.command()
@SPEC
@SET
@click.option("--force", multiple=True, metavar="STAGE", help="Passed to `stardag run`.")
@click.option("--until", multiple=True, metavar="STAGE", help="Passed to `stardag run`.")
@click.option(
    "--store",
    metavar="URI",
    help="Where the job keeps artifacts: an absolute path "
    "every node can reach, or s3://bucket/prefix (default: $STARDAG_STORE, the "
    "spec's `store:` if absolute).",
)
@JOB_ADDRESS
@click.option(
    "--working-dir",
    type=click.Path(file_okay=False, exists=True),
    metavar="DIR",
    help="Directory sent with the job (default: the spec's); must hold the spec.",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="PATTERN",
    help="Leave files matching PATTERN (.gitignore style) out of the upload (repeatable).",
)
@click.option(
    "--pip",
    multiple=True,
    metavar="PKG",
    help="Install PKG for the job (runtime_env "
    "pip; repeatable). By default the cluster's own environment is used.",
)
@click.option(
    "--env",
    multiple=True,
    metavar="NAME=VALUE",
    help="Environment variable for the job (repeatable).",
)
@click.option(
    "--runtime-env",
    "runtime_env_file",
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    help="A Ray runtime_env as YAML or JSON (pip, py_modules, "
    "env_vars, ...); --pip and --env add to it.",
)
@click.option("--job-id", metavar="ID", help="Submission id to use (default: Ray picks one).")
@click.option("--no-wait", is_flag=True, help="Print the job id and return; don't follow logs.")
@_errors
def submit(
    spec,
    overrides,
    force,
    until,
    store,
    address,
    working_dir,
    excludes,
    pip,
    env,
    runtime_env_file,
    job_id,
    no_wait,
):
    """Run a pipeline on a Ray cluster as a Ray Job: `stardag run` on the cluster, with the
    spec's directory sent along. Prints the job id, then follows its logs (unless --no-wait)
    and exits with the run's status.

    \b
    Example:
      stardag submit pipelines/star.yaml --address http://head:8265 \\
          --store /shared/stardag --set loop.iterations=2
    """
    from . import submit as sub

    prepared = sub.prepare(
        spec, overrides, store, force, until, working_dir, runtime_env_file, pip, env, excludes
    )
    c = sub.client(address)
    job = sub.submit(c, prepared, job_id)
    click.echo(job)
    click.echo(
        f"submitted to {c.stardag_address}; store {prepared.store}\n"
        f"  stardag status {job} --address {c.stardag_address}\n"
        f"  stardag logs {job} --address {c.stardag_address} --follow",
        err=True,
    )
    if no_wait:
        return
    _follow(sub, c, job)


def _follow(sub, c, job: str):
    try:
        sub.follow(c, job)
    except KeyboardInterrupt:
        click.echo(
            f"stopped following; job {job} goes on (`ray job stop {job}` stops it)", err=True
        )
        sys.exit(130)
    info = sub.info(c, job)
    click.echo(f"job {job} {info.status}", err=True)
    sys.exit(sub.exit_code(info))


@main.command()
@click.argument("job")
@JOB_ADDRESS
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: {job_id, status, message, "
    "entrypoint, start_time, end_time, driver_exit_code, metadata}.",
)
@_errors
def status(job, address, as_json):
    """A submitted job's status: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED. Exits 1
    (or the run's exit status) if the job failed or was stopped.

    \b
    Example:
      stardag status raysubmit_9KxVwz1bTbJ2Tg5Q --address http://head:8265
    """
    from . import submit as sub

    info = sub.info(sub.client(address), job)
    click.echo(sub.as_json(info) if as_json else sub.describe(info))
    sys.exit(sub.exit_code(info))


@main.command()
@click.argument("job")
@JOB_ADDRESS
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing until the job ends; exit with its status."
)
@_errors
def logs(job, address, follow):
    """A submitted job's output: `stardag run`'s progress lines and errors.

    \b
    Example:
      stardag logs raysubmit_9KxVwz1bTbJ2Tg5Q --address http://head:8265 --follow
    """
    from . import submit as sub

    c = sub.client(address)
    if follow:
        _follow(sub, c, job)
    click.echo(sub.logs(c, job), nl=False)


def _size(n: float) -> str:
    from .humanize import size

    return size(n)


def _age(s: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s / n:.0f}{unit} ago"
    return f"{s:.0f}s ago"


if __name__ == "__main__":
    main()
