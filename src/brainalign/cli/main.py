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

from brainalign.cli.cache import cache_app
from brainalign.config import ConfigError, DataError, Experiment, load_config
from brainalign._utils.locking import OutputLocked

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Align AI model representations with fMRI.")
app.add_typer(cache_app, name="cache")
console = Console(stderr=True, soft_wrap=True)  # never break messages (paths, fields) across lines

EXIT_USER_ERROR = 2


def demo_config_path() -> Path:
    return Path(str(resources.files("brainalign") / "configs" / "demo.yaml"))


@contextmanager
def _user_errors(debug: bool):
    """Turn the errors a user can fix into one message and exit code 2.

    Those are ours: a :class:`ConfigError` (config, flags), a :class:`DataError` (input data that cannot be used as
    given), a missing file and an output folder another run holds. Anything else (a plain ``ValueError``
    included) is a bug: it propagates, so the traceback shows and the exit code is 1.
    """
    try:
        yield
    except (ConfigError, DataError, FileNotFoundError, OutputLocked) as err:
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


def _execute(exp: Experiment, base_dir: Path | None, out: Path, cache: Path | None, checkpoint=None,
             data_root: Path | None = None) -> Path:
    """Run the study into ``out``: one subject → results and report in ``out``; several → ``out/sub-<id>/`` each
    with its results and report, and the group tables and report in ``out``."""
    from brainalign.pipeline import runner as pipeline
    from brainalign.features.store import FeatureStore

    t0 = time.perf_counter()
    log = lambda s: console.print(f"[dim]{escape(s)}[/]", highlight=False, soft_wrap=True)  # noqa: E731
    with _progress() as factory:
        per_subject, group = pipeline.run_study(exp, base_dir=base_dir, store=FeatureStore(cache), progress=factory,
                                                log=log, checkpoint=checkpoint, data_root=data_root)
    if group is None:
        return _save_with_report(next(iter(per_subject.values())), out, t0)
    for subject, res in per_subject.items():
        _save_with_report(res, out / f"sub-{subject}", t0)
    return _save_with_report(group, out, t0)


def _save_with_report(res, out: Path, t0: float) -> Path:
    from brainalign.report.html import write_report

    res.save(out)
    t1 = time.perf_counter()
    report = write_report(res, out)
    res.manifest["timings_s"]["report"] = round(time.perf_counter() - t1, 3)
    res.manifest["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    res.save(out)  # manifest with the report time
    return report


def _load(config: Path, overrides: list[str] | None = None, models: str = "as-configured",
          cache: Path | None = None) -> Experiment:
    """The config after ``--set`` overrides and, with ``--models tiny``, small stand-ins of its models."""
    exp = load_config(config, overrides or ())
    if models == "tiny":
        from brainalign.features.store import FeatureStore
        from brainalign.features.tiny_swap import tiny_models

        models = tiny_models(exp.models, FeatureStore(cache).root / "tiny-models", seed=exp.seed)
        exp = exp.model_copy(update=dict(models=models))
    elif models != "as-configured":
        raise ConfigError(f"--models {models!r}: use 'as-configured' or 'tiny'.")
    return exp


def _check_config(config: Path, data_root: Path | None = None, overrides: list[str] | None = None,
                  models: str = "as-configured", cache: Path | None = None, out: Path | None = None,
                  force_disk: bool = False) -> tuple[Experiment, dict]:
    """Every check before compute (:func:`brainalign.pipeline.preflight.preflight`), then the disk: the dry-run's
    estimates against the free space at the feature cache, TMPDIR and beside ``out``."""
    import warnings

    from brainalign.pipeline.preflight import preflight

    exp = _load(config, overrides, models, cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shown below, loudly, instead
        info = preflight(exp, config.parent.resolve(), str(config), data_root=data_root)
    notes = list(info.get("notes", []))
    try:
        notes += _check_disk(exp, config, data_root, cache, out, force_disk)
    finally:
        for note in notes:
            console.print(f"[bold yellow]WARNING:[/] {escape(note)}", highlight=False, soft_wrap=True)
    return exp, info


def _check_disk(exp: Experiment, config: Path, data_root: Path | None, cache: Path | None, out: Path | None,
                force_disk: bool) -> list[str]:
    from brainalign.pipeline.preflight import check_disk, disk_needs, study_plan

    try:
        plan = study_plan(exp, config.parent.resolve(), data_root)
    except ConfigError as err:  # no plan is written for this format yet
        return [f"free disk space not checked: {err}"]
    return check_disk(disk_needs(exp, plan, out, cache), force=force_disk, config_file=str(config))


DATA_ROOT_HELP = ("Dataset folder (replaces brain.data_root); every data path of the config must stay inside it "
                  "(no '..' or symlink escapes).")
SET_HELP = "Override a config value for this run: --set analysis.n_permutations=0 (YAML value; repeatable)."
MODELS_HELP = ("'tiny': replace every multimodal model by a small random model of the same architecture "
               "(model_type), to check a study's plumbing end to end without the weights.")


FORCE_DISK_HELP = ("Start even when the free disk space at the feature cache, TMPDIR or beside --out is smaller "
                   "than the run's estimate (e.g. when the features are already cached).")


@app.command()
def validate(config: Path = typer.Argument(..., help="Experiment YAML."),
             data_root: Optional[Path] = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
             set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
             out: Optional[Path] = typer.Option(None, "--out", help="Results folder `run` will write (its disk "
                                                "space is checked too)."),
             cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: ~/.cache/brainalign)."),
             force_disk: bool = typer.Option(False, "--force-disk", help=FORCE_DISK_HELP),
             debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Check a config and its data files in seconds (no model loading, no fitting): every error `run` could hit
    later, the voxels it will exclude, and the free disk space."""
    from brainalign.steering.config import is_steering_config

    if is_steering_config(config):  # brain-guided LLM steering YAML: same check as `steer --validate-only`
        return steer(config, out=out, validate_only=True, force=False, set_=set_, models="as-configured", cache=None,
                     force_disk=force_disk, dry_run=False, debug=debug)
    with _user_errors(debug):
        exp, info = _check_config(config, data_root, set_, cache=cache, out=out, force_disk=force_disk)
    if "n_trs" not in info:  # dataset formats
        console.print(f"[green]ok[/] {config}: '{exp.name}', {len(exp.models)} model(s) × {len(exp.prompts)} "
                      f"prompt(s); {info['n_subjects']} subject(s), all {info['n_files']} data files present under "
                      f"{info['data_root']} ({info['unchecked']}); ridge on encoding.backend "
                      f"'{exp.encoding.backend}'.", highlight=False)
        return
    excluded = f" ({info['excluded_voxels']} excluded by `run`, see the warning)" if info["excluded_voxels"] else ""
    console.print(f"[green]ok[/] {config}: '{exp.name}', {len(exp.models)} model(s) × {len(exp.prompts)} prompt(s); "
                  f"{info['n_trs']} TRs in {info['n_runs']} runs, {info['n_voxels']} voxels{excluded}; about "
                  f"{info['memory_bytes'] / 2**20:.0f} MiB at peak; ridge on encoding.backend "
                  f"'{exp.encoding.backend}'.", highlight=False)


@app.command()
def run(config: Path = typer.Argument(..., help="Experiment YAML."),
        out: Optional[Path] = typer.Option(None, "--out", help="Results folder (must not exist unless --force or "
                                           "--resume)."),
        force: bool = typer.Option(False, help="Replace an existing results folder and discard interrupted work."),
        resume: bool = typer.Option(False, help="Continue an interrupted run of the same config (checked by "
                                    "its hash): finished features and (space, fold) fits are not recomputed."),
        cache: Optional[Path] = typer.Option(None, help="Feature cache folder (default: ~/.cache/brainalign)."),
        data_root: Optional[Path] = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
        set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
        models: str = typer.Option("as-configured", "--models", help=MODELS_HELP),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (forward passes, feature bytes, "
                                     "fits, time, memory) and stop; reads no fMRI and loads no model."),
        force_disk: bool = typer.Option(False, "--force-disk", help=FORCE_DISK_HELP),
        debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Run an experiment: features, encoding, statistics, report."""
    from brainalign._utils.locking import RunLock
    from brainalign.pipeline.checkpoint import EncodingCheckpoint, prepare_work_dir

    with _user_errors(debug):
        if force and resume:
            raise ConfigError("--force and --resume contradict each other; --resume continues the earlier run, "
                              "--force discards it. Pass one.")
        if dry_run:
            from brainalign.pipeline.preflight import study_plan

            exp = _load(config, set_, models, cache)
            print(study_plan(exp, config.parent.resolve(), data_root).text())
            return
        if out is None:
            raise ConfigError("--out is required to run (or pass --dry-run).")
        exp, _ = _check_config(config, data_root, set_, models, cache, out=out, force_disk=force_disk)
        with RunLock(out):
            _recover_swap(out)
            if out.exists() and any(out.iterdir()) and not (force or resume):
                raise ConfigError(f"results folder {out} already exists and is not empty; choose another --out, pass "
                                  "--force to replace it, or --resume to continue it.")
            wd = prepare_work_dir(out, exp.config_hash(), resume=resume, force=force)
            checkpoint = EncodingCheckpoint(wd / "checkpoints")
            _remove_orphans(out, keep=(wd,))
            report = _replace_dir(out, lambda tmp: _execute(exp, config.parent.resolve(), tmp, cache, checkpoint,
                                                            data_root))
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
        from brainalign._utils.locking import RunLock

        with RunLock(out):
            _recover_swap(out)
            report = _replace_dir(out, lambda tmp: _execute(exp, config.parent, tmp, cache))
    console.print(f"[bold green]report:[/] {report}", highlight=False)
    print(report)


@app.command()
def report(results: Path = typer.Argument(..., help="A results folder written by `brainalign run`."),
           debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """(Re)write report.html from a results folder of `run` or `steer` (under the folder's lock: not while a run
    writes it)."""
    from brainalign._utils.locking import RunLock
    from brainalign.report.html import write_report, write_steering_report
    from brainalign.report.steering import is_steering_folder
    from brainalign.report.results import Results

    with _user_errors(debug):
        if not results.is_dir():
            raise FileNotFoundError(f"results folder {results} does not exist; pass the --out folder of "
                                    "`brainalign run` or `brainalign steer`.")
        with RunLock(results):
            if (results / "run_scores.parquet").is_file() or not is_steering_folder(results):
                try:
                    res = Results.load(results)
                except FileNotFoundError as err:
                    raise FileNotFoundError(f"{err} It holds no steering tables either (`brainalign steer`'s "
                                            "nari.csv); pass the --out folder of `brainalign run` or `steer`.") from None
                path = write_report(res, results)
            else:
                path = write_steering_report(results)
    console.print(f"[bold green]report:[/] {path}", highlight=False)


@app.command()
def steer(config: Path = typer.Argument(..., help="Steering study YAML (schema: brainalign.steering.config)."),
          out: Optional[Path] = typer.Option(None, "--out", help="Results folder (must not exist unless --force)."),
          validate_only: bool = typer.Option(False, "--validate-only",
                                             help="Check the config and name every missing ds003076 file; run nothing."),
          force: bool = typer.Option(False, help="Replace an existing results folder."),
          set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
          models: str = typer.Option("as-configured", "--models",
                                     help="'tiny': replace every causal LM by a small random model of its family."),
          cache: Optional[Path] = typer.Option(None, help="Where --models tiny keeps its models (default: the "
                                               "feature cache)."),
          force_disk: bool = typer.Option(False, "--force-disk", help=FORCE_DISK_HELP),
          dry_run: bool = typer.Option(False, "--dry-run", help="Print the forward passes per model and section, "
                                       "the passes per second assumed and the GPU-hours; load nothing."),
          debug: bool = typer.Option(False, help="Show tracebacks.")) -> None:
    """Brain-guided LMs (Xiao et al., 2026): every section of the config (predictivity, NARI, general directions,
    NARF+Label fine-tuning, evaluation), planted or on ds003076; tables + manifest written atomically."""
    from brainalign._utils.locking import RunLock
    from brainalign.steering.config import SteerConfigError, load_steer_config
    from brainalign.steering.study import check_config, check_inputs, run_steer

    with _user_errors(debug):
        try:
            cfg = load_steer_config(config, set_ or ())
        except SteerConfigError as err:
            raise ConfigError(str(err)) from None
        if models == "tiny":
            cfg = _tiny_steer_models(cfg, cache)
        elif models != "as-configured":
            raise ConfigError(f"--models {models!r}: use 'as-configured' or 'tiny'.")
        base = config.parent.resolve()
        if dry_run:
            from brainalign.steering.plan import steer_plan

            print(steer_plan(cfg, base))
            return
        missing = check_inputs(cfg, base)
        if missing:
            raise FileNotFoundError(f"{config} names inputs that are missing:\n{missing}")
        try:
            notes = check_config(cfg, base, out, force_disk, str(config))
        except SteerConfigError as err:
            raise ConfigError(str(err), file=str(config)) from None
        for note in notes:
            console.print(f"[bold yellow]WARNING:[/] {escape(note)}", highlight=False, soft_wrap=True)
        if validate_only:
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
                from brainalign.report.html import write_steering_report

                run_steer(cfg, tmp, base, log=log)
                write_steering_report(tmp)  # like `run`: the report is there when the results are
                return tmp / "manifest.json"

            try:
                manifest = _replace_dir(out, produce)
            except SteerConfigError as err:
                raise ConfigError(str(err)) from None
    console.print(f"[bold green]manifest:[/] {manifest}", highlight=False)
    console.print(f"[bold green]report:[/] {Path(manifest).parent / 'report.html'}", highlight=False)


def _tiny_steer_models(cfg, cache: Path | None):
    """The steering config with every model replaced by a tiny random causal LM of its family (built once)."""
    from brainalign.features.store import FeatureStore
    from brainalign.steering.models import build_tiny_causal_lm, tiny_arch_for

    root = FeatureStore(cache).root / "tiny-models"
    folders = []
    for m in cfg.models:
        try:
            arch = tiny_arch_for(str(m))
        except ValueError as err:  # a model family --models tiny does not know: the user's choice, not a bug
            raise ConfigError(str(err), field="models") from None
        folder = root / f"causal-{arch}-seed{cfg.seed}"
        if not (folder / "config.json").is_file():  # built beside, then renamed: never a half-written model
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
            build_tiny_causal_lm(tmp, arch, hidden_size=32, num_layers=4, seed=cfg.seed)
            try:
                tmp.rename(folder)
            except OSError:  # another run finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
        folders.append(str(folder))
    return cfg.model_copy(update=dict(models=list(dict.fromkeys(folders))))


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
