"""`brainalign cache ls | verify | clear` on a real cache written by the pipeline."""
from __future__ import annotations

from brainalign import pipeline
from brainalign.config import load_config
from brainalign.features.store import FeatureStore

from conftest import run_cli
from test_config import DEMO


def test_cache_ls_verify_clear(tmp_path):
    exp = load_config(DEMO)
    pipeline.model_features(exp, ["face", "house"], FeatureStore(tmp_path))
    n = 2 * len(exp.prompts)

    ls = run_cli("cache", "ls", "--cache", str(tmp_path))
    assert ls.returncode == 0 and f"{n} entries" in ls.stdout and "all-MiniLM-L6-v2" in ls.stdout

    ok = run_cli("cache", "verify", "--cache", str(tmp_path))
    assert ok.returncode == 0 and f"{n} entries verified" in ok.stdout

    victim = sorted((tmp_path / "features").rglob("*.npy"))[0]
    victim.write_bytes(victim.read_bytes()[:-8])  # truncated: checksum no longer matches
    bad = run_cli("cache", "verify", "--cache", str(tmp_path))
    assert bad.returncode == 1 and f"1 of {n} entries are corrupt" in bad.stdout
    fixed = run_cli("cache", "verify", "--fix", "--cache", str(tmp_path))
    assert fixed.returncode == 0 and not victim.exists()
    assert run_cli("cache", "verify", "--cache", str(tmp_path)).returncode == 0

    refused = run_cli("cache", "clear", "--cache", str(tmp_path), input="n\n")
    assert refused.returncode == 1 and len(FeatureStore(tmp_path).entries()) == n - 1
    gone = run_cli("cache", "clear", "--yes", "--cache", str(tmp_path))
    assert gone.returncode == 0 and FeatureStore(tmp_path).entries() == []
