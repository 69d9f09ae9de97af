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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from brainalign.config import ConfigError, Experiment, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Align AI model representations with fMRI.")
console = Console(stderr=True, soft_wrap=True)  # never break messages (paths, fields) across lines

EXIT_USER_ERROR = 2


def demo_config_path() -> Path:
    return Path(str(resources.files("brainalign") / "configs" / "demo.yaml"))


@contextmanager
def _user_errors(debug: bool):
    """Turn expected user errors into a message and exit code 2."""
    try:
        yield
    except (ConfigError, FileNotFoundError, ValueError) as err:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {err}", markup=True, highlight=False)
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


def _execute(exp: Experiment, base_dir: Path | None, out: Path, cache: Path | None) -> Path:
    from brainalign import pipeline
    from brainalign.features.store import FeatureStore
    from brainalign.report.html import write_report

    t0 = time.perf_counter()
    with _progress() as factory:
        res = pipeline.run(exp, base_dir=base_dir, store=FeatureStore(cache), progress=factory,
                           log=lambda s: console.print(f"[dim]{s}[/]", highlight=False))
    res.save(out)
    t1 = time.perf_counter()
    report = write_report(res, out)
    res.manifest["timings_s"]["report"] = round(time.perf_counter() - t1, 3)
    res.manifest["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    res.save(out)  # manifest with the report time
    return report


def _check_config(config: Path) -> tuple[Experiment, dict]:
    from brainalign.validate import preflight

    exp = load_config(config)
    return exp, preflight(exp, config.parent.resolve(), str(config))


@app.command()
def validate(config: Path = typer.Argument(..., help="Experiment YAML."),
             debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Check a config and its data files in seconds (no model loading, no fitting)."""
    with _user_errors(debug):
        exp, info = _check_config(config)
    console.print(f"[green]ok[/] {config}: '{exp.name}', {len(exp.models)} model(s) × {len(exp.prompts)} prompt(s); "
                  f"{info['n_trs']} TRs in {info['n_runs']} runs, {info['n_voxels']} voxels.", highlight=False)


@app.command()
def run(config: Path = typer.Argument(..., help="Experiment YAML."),
        out: Path = typer.Option(..., "--out", help="Results folder (must not exist unless --force)."),
        force: bool = typer.Option(False, help="Replace an existing results folder."),
        cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: ~/.cache/brainalign)."),
        debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Run an experiment: features, encoding, statistics, report."""
    with _user_errors(debug):
        exp, _ = _check_config(config)
        if out.exists() and any(out.iterdir()) and not force:
            raise ConfigError(f"results folder {out} already exists and is not empty; choose another --out or pass "
                              "--force to replace it.")
        report = _replace_dir(out, lambda tmp: _execute(exp, config.parent.resolve(), tmp, cache))
    console.print(f"[bold green]report:[/] {report}", highlight=False)


@app.command()
def demo(out: Path = typer.Option(Path("results/demo"), "--out", help="Where to write the demo's results."),
         cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: ~/.cache/brainalign)."),
         debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Run the embedded demo (Haxby 2001 fMRI × MiniLM, three prompt regimes); replaces only its own results."""
    with _user_errors(debug):
        config = demo_config_path()
        exp, _ = _check_config(config)
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
