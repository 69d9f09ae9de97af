"""``brainalign cache ls | verify | clear``: inspect and prune the feature cache."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from brainalign.features.store import FeatureStore

cache_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect or prune the feature cache.")
console = Console(soft_wrap=True)
CacheOpt = typer.Option(None, "--cache", help="Cache folder (default: $BRAINALIGN_CACHE or ~/.cache/brainalign).")


@cache_app.command("ls")
def ls(cache: Optional[Path] = CacheOpt) -> None:
    """Entries per model, with their size on disk."""
    store = FeatureStore(cache)
    entries = store.entries()
    table = Table(title=f"feature cache {store.dir}")
    for col in ("model", "entries", "MiB"):
        table.add_column(col, justify="left" if col == "model" else "right")
    count, size = Counter(), Counter()
    for e in entries:
        name = str(e.get("model") or e.get("fingerprint") or "?")
        count[name] += 1
        size[name] += e["bytes"]
    for name in sorted(count):
        table.add_row(name, str(count[name]), f"{size[name] / 2**20:.2f}")
    console.print(table)
    console.print(f"{len(entries)} entries, {sum(size.values()) / 2**20:.2f} MiB")


@cache_app.command()
def verify(cache: Optional[Path] = CacheOpt,
           fix: bool = typer.Option(False, help="Delete corrupt entries (they are recomputed on the next run).")) -> None:
    """Check every entry's checksum; exit 1 when corrupt entries remain."""
    store = FeatureStore(cache)
    n, bad = store.verify()
    if not bad:
        console.print(f"[green]ok[/] {n} entries verified in {store.dir}")
        return
    console.print(f"[red]{len(bad)} of {n} entries are corrupt or incomplete[/]: {', '.join(k[:12] for k in bad)}")
    if fix:
        store.remove(bad)
        console.print(f"removed {len(bad)}; they will be recomputed on the next run")
        return
    raise typer.Exit(1)


@cache_app.command()
def clear(cache: Optional[Path] = CacheOpt,
          model: Optional[str] = typer.Option(None, help="Only entries of this model id."),
          yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """Delete cached features (all, or one model's)."""
    store = FeatureStore(cache)
    keys = None if model is None else [e["key"] for e in store.entries() if e.get("model") == model]
    what = "every entry" if model is None else f"{len(keys)} entries of {model}"
    if not yes and not typer.confirm(f"Delete {what} in {store.dir}?"):
        raise typer.Exit(1)
    console.print(f"removed {store.remove(keys)} entries")
