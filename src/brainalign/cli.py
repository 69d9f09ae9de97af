"""Command line: ``brainalign demo | run | validate | report``.

Errors a user can fix (bad config, missing files) print one message naming
the file, the field and the fix, and exit with code 2; ``--debug`` shows the
traceback instead.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from brainalign.cache_cli import cache_app
from brainalign.config import ConfigError, Experiment, load_config
from brainalign.locking import OutputLocked

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Align AI model representations with fMRI.")
app.add_typer(cache_app, name="cache")
console = Console(stderr=True, soft_wrap=True)  # never break messages (paths, fields) across lines

EXIT_USER_ERROR = 2


def demo_config_path() -> Path:
    return Path(str(resources.files("brainalign") / "configs" / "demo.yaml"))


@contextmanager
def _user_errors(debug: bool):
    """Turn expected user errors into a message and exit code 2."""
    try:
        yield
    except (ConfigError, FileNotFoundError, ValueError, OutputLocked) as err:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


@contextmanager
def _progress():
    """A rich progress display; yields a factory ``(label, total) -> tick``."""
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        def factory(label: str, total: int):
            task = bar.add_task(label, total=total)
            return lambda: bar.advance(task)

        yield factory


def _execute(exp: Experiment, base_dir: Path | None, out: Path, cache: Path | None, checkpoint=None) -> Path:
    from brainalign import pipeline
    from brainalign.features.store import FeatureStore
    from brainalign.report.html import write_report

    t0 = time.perf_counter()
    with _progress() as factory:
        res = pipeline.run(exp, base_dir=base_dir, store=FeatureStore(cache), progress=factory,
                           log=lambda s: console.print(f"[dim]{escape(s)}[/]", highlight=False, soft_wrap=True),
                           checkpoint=checkpoint)
    res.save(out)
    t1 = time.perf_counter()
    report = write_report(res, out)
    res.manifest["timings_s"]["report"] = round(time.perf_counter() - t1, 3)
    res.manifest["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    res.save(out)  # manifest with the report time
    return report


def _check_config(config: Path, data_root: Path | None = None) -> tuple[Experiment, dict]:
    import warnings

    from brainalign.validate import preflight

    exp = load_config(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shown below, loudly, instead
        info = preflight(exp, config.parent.resolve(), str(config), data_root=data_root)
    for note in info.get("notes", []):
        console.print(f"[bold yellow]WARNING:[/] {escape(note)}", highlight=False, soft_wrap=True)
    return exp, info


DATA_ROOT_HELP = "Folder every data path of the config must stay inside (no '..' or symlink escapes)."


@app.command()
def validate(config: Path = typer.Argument(..., help="Experiment YAML."),
             data_root: Optional[Path] = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
             debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Check a config and its data files in seconds (no model loading, no fitting)."""
    from brainalign.steering.config import is_steering_config

    if is_steering_config(config):  # seed-002 steering YAML: same check as `steer --validate-only`
        return steer(config, out=None, validate_only=True, force=False, debug=debug)
    with _user_errors(debug):
        exp, info = _check_config(config, data_root)
    console.print(f"[green]ok[/] {config}: '{exp.name}', {len(exp.models)} model(s) × {len(exp.prompts)} prompt(s); "
                  f"{info['n_trs']} TRs in {info['n_runs']} runs, {info['n_voxels']} voxels; about "
                  f"{info['memory_bytes'] / 2**20:.0f} MiB at peak.", highlight=False)


@app.command()
def run(config: Path = typer.Argument(..., help="Experiment YAML."),
        out: Path = typer.Option(..., "--out", help="Results folder (must not exist unless --force or --resume)."),
        force: bool = typer.Option(False, help="Replace an existing results folder and discard interrupted work."),
        resume: bool = typer.Option(False, help="Continue an interrupted run of the same config (checked by "
                                    "its hash): finished features and (space, fold) fits are not recomputed."),
        cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: ~/.cache/brainalign)."),
        data_root: Optional[Path] = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
        debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Run an experiment: features, encoding, statistics, report."""
    from brainalign.locking import RunLock
    from brainalign.resume import EncodingCheckpoint, prepare_work_dir

    with _user_errors(debug):
        if force and resume:
            raise ConfigError("--force and --resume contradict each other; --resume continues the earlier run, "
                              "--force discards it. Pass one.")
        exp, _ = _check_config(config, data_root)
        with RunLock(out):
            _recover_swap(out)
            if out.exists() and any(out.iterdir()) and not (force or resume):
                raise ConfigError(f"results folder {out} already exists and is not empty; choose another --out, pass "
                                  "--force to replace it, or --resume to continue it.")
            wd = prepare_work_dir(out, exp.config_hash(), resume=resume, force=force)
            checkpoint = EncodingCheckpoint(wd / "checkpoints")
            _remove_orphans(out, keep=(wd,))
            report = _replace_dir(out, lambda tmp: _execute(exp, config.parent.resolve(), tmp, cache, checkpoint))
            shutil.rmtree(wd, ignore_errors=True)  # the results are complete: the work is no longer needed
    console.print(f"[bold green]report:[/] {report}", highlight=False)


@app.command()
def demo(out: Path = typer.Option(Path("results/demo"), "--out", help="Where to write the demo's results."),
         cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: ~/.cache/brainalign)."),
         debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Run the embedded demo (Haxby 2001 fMRI × MiniLM, three prompt regimes); replaces only its own results."""
    with _user_errors(debug):
        config = demo_config_path()
        exp, _ = _check_config(config)
        from brainalign.locking import RunLock

        with RunLock(out):
            _recover_swap(out)
            report = _replace_dir(out, lambda tmp: _execute(exp, config.parent, tmp, cache))
    console.print(f"[bold green]report:[/] {report}", highlight=False)
    print(report)


@app.command()
def report(results: Path = typer.Argument(..., help="A results folder written by `brainalign run`."),
           debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """(Re)write report.html from a results folder."""
    from brainalign.report.html import write_report
    from brainalign.results import Results

    with _user_errors(debug):
        path = write_report(Results.load(results), results)
    console.print(f"[bold green]report:[/] {path}", highlight=False)


@app.command()
def steer(config: Path = typer.Argument(..., help="Steering study YAML (schema: brainalign.steering.config)."),
          out: Optional[Path] = typer.Option(None, "--out", help="Results folder (must not exist unless --force)."),
          validate_only: bool = typer.Option(False, "--validate-only",
                                             help="Check the config and name every missing ds003076 file; run nothing."),
          force: bool = typer.Option(False, help="Replace an existing results folder."),
          debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Brain-guided LMs (seed 002): every section of the config (predictivity, NARI, general directions,
    NARF+Label fine-tuning, evaluation), planted or on ds003076; tables + manifest written atomically."""
    from brainalign.locking import RunLock
    from brainalign.steering.config import SteerConfigError, load_steer_config
    from brainalign.steering.study import check_inputs, run_steer

    with _user_errors(debug):
        try:
            cfg = load_steer_config(config)
        except SteerConfigError as err:
            raise ConfigError(str(err)) from None
        base = config.parent.resolve()
        if validate_only:
            missing = check_inputs(cfg, base)
            if missing:
                raise FileNotFoundError(missing)
            src = "planted (simulated)" if cfg.planted is not None else f"ds003076 at {cfg.brain.root}"
            console.print(f"[green]ok[/] {config}: steering study '{cfg.name}', {src}; all inputs present.",
                          highlight=False)
            return
        if out is None:
            raise ConfigError("--out is required to run a steering study (or pass --validate-only).")
        with RunLock(out):
            _recover_swap(out)
            if out.exists() and any(out.iterdir()) and not force:
                raise ConfigError(f"results folder {out} already exists and is not empty; choose another --out or "
                                  "pass --force to replace it.")
            log = lambda s: console.print(f"[dim]{escape(s)}[/]", highlight=False, soft_wrap=True)  # noqa: E731

            def produce(tmp: Path) -> Path:
                run_steer(cfg, tmp, base, log=log)
                return tmp / "manifest.json"

            try:
                manifest = _replace_dir(out, produce)
            except SteerConfigError as err:
                raise ConfigError(str(err)) from None
    console.print(f"[bold green]manifest:[/] {manifest}", highlight=False)


def _recover_swap(out: Path) -> None:
    """Finish what a run killed in the middle of :func:`_replace_dir`'s swap left: the previous results parked
    as ``.<name>.old`` come back when ``out`` is missing (nothing is lost); call under the lock."""
    out = Path(out).absolute()
    old = out.with_name(f".{out.name}.old")
    if old.is_dir():
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(out)
            console.print(f"[bold yellow]WARNING:[/] restored {escape(str(out))} from {escape(old.name)}, left by an "
                          "interrupted run.", highlight=False, soft_wrap=True)


def _remove_orphans(out: Path, keep: tuple[Path, ...]) -> None:
    """Delete temporary result folders of killed runs (``.<name>.XXXX`` beside ``out``); call under the lock."""
    keep_names = {p.name for p in keep} | {f".{out.name}.old", f".{out.name}.lock"}
    for p in Path(out).absolute().parent.glob(f".{out.name}.*"):
        if p.is_dir() and p.name not in keep_names:
            shutil.rmtree(p, ignore_errors=True)


def _replace_dir(out: Path, produce) -> Path:
    """Build the results in a sibling temporary folder, then swap it in: a crash never leaves a half-written
    folder, and the old results stay until the new ones are complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        report = produce(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / Path(report).name


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
