"""`brainalign report` on steering output (accuracy before/after, flips vs controls) and under the run lock."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from brainalign.cli import app
from brainalign.report.steering import find_steering_tables, steering_contrasts, steering_summary

from conftest import run_cli

PLANTED = {"name": "tiny-planted <b>", "seed": 0,
           "planted": {"arch": "qwen2", "hidden_size": 32, "num_layers": 4, "n_items": 40, "n_subjects": 2,
                       "n_voxels": 40},
           "predictivity": {"controls": ["random_features"]},
           "nari": {"layers": [2], "max_steps": 10, "controls": ["random_direction", "random_fmri"]}}


@pytest.fixture(scope="module")
def steer_dir(tmp_path_factory):
    """A real `brainalign steer` output folder (the planted tiny study)."""
    tmp = tmp_path_factory.mktemp("steer")
    cfg = tmp / "planted.yaml"
    cfg.write_text(yaml.safe_dump(PLANTED))
    out = tmp / "res"
    proc = run_cli("steer", str(cfg), "--out", str(out), env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _nari_rows() -> pd.DataFrame:
    """Today's nari.csv columns, planted numbers: the fMRI direction flips 8/10 and 6/10, the random one 1/10, 3/10."""
    return pd.DataFrame(dict(subject=[0, 0, 1, 1], layer=[2, 2, 2, 2],
                             condition=["fmri", "random_direction", "fmri", "random_direction"],
                             n_items=[10, 10, 10, 10], flipped=[8, 1, 6, 3],
                             flipped_fraction=[0.8, 0.1, 0.6, 0.3], intervened_accuracy=[0.9, 0.6, 0.8, 0.7]))


def test_summary_and_contrasts_of_todays_nari_table(tmp_path):
    _nari_rows().to_csv(tmp_path / "nari.csv", index=False)
    pd.DataFrame(dict(condition=["model"], layer=[0], score=[0.3])).to_csv(tmp_path / "predictivity.csv", index=False)
    tables = find_steering_tables(tmp_path)
    assert list(tables) == ["nari"]  # predictivity.csv holds no flips or accuracies
    s = steering_summary(tables, {"model_accuracy": 0.55}).set_index("condition")
    assert s.loc["fmri", "n_flipped"] == 14 and s.loc["fmri", "n_items"] == 20
    assert s.loc["fmri", "flipped_fraction"] == pytest.approx(0.7)
    assert s.loc["random_direction", "accuracy_after"] == pytest.approx(0.65)
    assert (s["accuracy_before"] == 0.55).all()
    assert not s.loc["fmri", "control"] and s.loc["random_direction", "control"]
    c = steering_contrasts(tables).iloc[0]
    assert (c.condition, c.control_condition, c.n_pairs, c.n_better) == ("fmri", "random_direction", 2, 2)
    assert c.mean_diff_flipped == pytest.approx(0.5) and c.mean_diff_accuracy == pytest.approx(0.2)


def test_extended_tables_with_sections_and_extra_columns(tmp_path):
    """Columns `steer` may grow: section, accuracy_before/after, n_flipped, a boolean control flag, anything else."""
    t = pd.DataFrame(dict(section=["nari", "nari", "finetune", "finetune"],
                          condition=["brain", "shuffled_brain", "narf+label", "label_only"],
                          accuracy_before=[0.5, 0.5, 0.4, 0.4], accuracy_after=[0.9, 0.55, 0.7, 0.65],
                          n_flipped=[9, 2, 5, 4], n_items=[10, 10, 10, 10], control=[False, True, False, True],
                          seed=[0, 0, 0, 0], notes=["x", "y", "z", "w"]))
    t.to_csv(tmp_path / "steering.csv", index=False)
    s = steering_summary(find_steering_tables(tmp_path))
    assert list(s["section"]) == ["nari", "nari", "finetune", "finetune"]
    assert list(s["control"]) == [False, True, False, True]
    assert s["flipped_fraction"].tolist() == pytest.approx([0.9, 0.2, 0.5, 0.4])
    c = steering_contrasts(find_steering_tables(tmp_path))
    assert set(zip(c.section, c.condition, c.control_condition)) == {("nari", "brain", "shuffled_brain"),
                                                                    ("finetune", "narf+label", "label_only")}


def test_report_of_a_real_steer_folder(steer_dir):
    proc = run_cli("report", str(steer_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (steer_dir / "report.html").read_text()
    nari = pd.read_csv(steer_dir / "nari.csv")
    man = json.loads((steer_dir / "manifest.json").read_text())
    assert "<h2>Steering</h2>" in html and 'id="steering-contrasts"' in html
    fmri = nari[nari.condition == "fmri"]
    # the table shows today's numbers: flips summed over subjects, accuracy before from the manifest
    summary = re.search(r'<table id="steering" .*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr><td class=\"l\">nari</td><td class=\"l\">fmri</td>(.*?)</tr>", summary)
    assert len(rows) == 1  # issue: nari.csv and steering.csv both summarised, the NARI rows appeared twice
    row = rows[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[2] == f"{man['model_accuracy']:.3f}" and cells[3] == f"{fmri.intervened_accuracy.mean():.3f}"
    assert cells[4] == str(int(fmri.flipped.sum())) and cells[5] == str(int(fmri.n_items.sum()))
    assert "tiny-planted &lt;b&gt;" in html  # user text escaped
    assert html.count("data:image/png;base64,") == 2 and "download=\"nari.csv\"" in html
    from brainalign.report.html import render_steering_report

    assert render_steering_report(steer_dir) == html  # deterministic


def test_no_steering_section_without_steering_tables(tmp_path):
    from brainalign.report.html import render_steering_report

    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FileNotFoundError, match="steering tables"):
        render_steering_report(tmp_path)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a brainalign results folder" in res.output and "steer" in res.output


HOLD = """
import sys, time
from brainalign._utils.locking import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_report_refuses_while_a_run_holds_the_folder_lock(steer_dir):
    """A process holding the output folder's lock (as `brainalign run` does): `report` fails fast, writes nothing."""
    before = (steer_dir / "report.html").stat().st_mtime_ns if (steer_dir / "report.html").exists() else None
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(steer_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, ["report", str(steer_dir)])
        assert res.exit_code == 2 and "is being written by process" in res.output, res.output
        assert str(holder.pid) in res.output and time.perf_counter() - t0 < 10  # fails fast, does not wait
        after = (steer_dir / "report.html").stat().st_mtime_ns if (steer_dir / "report.html").exists() else None
        assert after == before
    finally:
        holder.kill()
        holder.wait()
    from brainalign._utils.locking import StaleLockWarning

    with pytest.warns(StaleLockWarning, match="taking over the stale lock"):  # the killed holder's flock is gone
        res = CliRunner().invoke(app, ["report", str(steer_dir)])
    assert res.exit_code == 0, res.output
    assert not (steer_dir.parent / f".{steer_dir.name}.lock").exists()



def test_results_folder_with_steering_tables_gets_a_steering_section(tmp_path):
    from brainalign.report.html import render_report
    from brainalign.report.results import Results
    from test_report_ceiling import _results

    folder = _results({}).save(tmp_path / "res")
    back = Results.load(folder)
    assert "<h2>Steering</h2>" not in render_report(back, folder)
    _nari_rows().to_csv(folder / "nari.csv", index=False)
    html = render_report(back, folder)
    assert "<h2>Steering</h2>" in html and 'id="comparisons"' in html
    assert "<td class=\"l\">random_direction</td><td class=\"\">yes</td>" in html


def test_steering_report_opens_cleanly_in_chromium(steer_dir):
    from brainalign.report.html import write_steering_report
    from chromium import Page

    path = write_steering_report(steer_dir)
    with Page(path) as p:
        p.screenshot("steering")
        p.page.locator("#steering th", has_text="flipped_fraction").click()  # the inline sorter works
        fractions = [float(t) for t in p.page.locator("#steering tbody tr td:nth-child(9)").all_inner_texts()]
    p.seen.assert_clean()
    assert p.seen.images_decoded == [True, True]
    assert fractions == sorted(fractions)
