"""Surface results (fsaverage meshes, no volume mask) in the report: saved, reloaded and drawn on the mesh offline."""
from __future__ import annotations

import base64
import io
import re
import socket

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainalign import pipeline
from brainalign.analysis.summary import compare_to_reference, layer_table
from brainalign.brain.recording import Recording
from brainalign.config import PartitionSpec, load_config
from brainalign.report import figures
from brainalign.report.html import render_report
from brainalign.report.results import Results

from test_config import DEMO

N5 = 10242  # fsaverage5 vertices per hemisphere


def _sphere() -> tuple[np.ndarray, np.ndarray]:
    from nilearn import datasets

    m = datasets.load_fsaverage("fsaverage5")["sphere"]
    return m.parts["left"].coordinates, m.parts["right"].coordinates


@pytest.fixture(scope="module")
def surface_results():
    """A planted fsaverage5 study: the model's features drive the frontal vertices (y > 30 on the sphere) only."""
    rng = np.random.default_rng(3)
    left, right = _sphere()
    y = np.concatenate([left[:, 1], right[:, 1]])
    # kept columns, left first: every vertex but a dropped band (as loaders drop the constant medial wall)
    vertices = np.flatnonzero(np.abs(np.concatenate([left[:, 0], right[:, 0]])) > 8)
    planted = y[vertices] > 30
    n_runs, n_per = 4, 60
    runs = np.repeat(np.arange(1, n_runs + 1), n_per)
    X = rng.standard_normal((runs.size, 4)).astype(np.float32)
    W = rng.standard_normal((4, vertices.size)) * planted
    Y = (X @ W + rng.standard_normal((runs.size, vertices.size))).astype(np.float32)
    rec = Recording(data=Y, runs=runs, tr=2.0, mask_img=None, space="fsaverage5", n_vertices=(N5, N5),
                    meta=dict(kept_vertices=vertices))
    exp = load_config(DEMO)
    exp.analysis.reference = "baseline/noise"
    exp.analysis.responsive_fraction = 1.0
    exp.analysis.n_permutations = 200
    exp.analysis.metric = "mean_r"
    exp.analysis.partitions = [PartitionSpec(name="model vs noise", spaces=["m/action/L0", "baseline/noise"])]
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    exp.encoding.alphas = [1.0, 10.0, 100.0]
    spaces = [pipeline.FeatureSpace("m/action/L0", X, "model", model="m", prompt="action", layer=0, depth=0.0),
              pipeline.FeatureSpace("baseline/noise", rng.standard_normal((runs.size, 4)).astype(np.float32),
                                    "baseline")]
    data = pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((runs.size, 0)))
    run_scores, preds, _ = pipeline.cross_validate(exp, data, spaces)
    space_table = pd.DataFrame([s.info() for s in spaces])
    tables = dict(spaces=space_table, run_scores=run_scores, voxel_scores=pipeline.voxel_scores(exp, data, preds),
                  comparisons=compare_to_reference(run_scores, exp.analysis.reference, "mean_r"),
                  layers=layer_table(run_scores, space_table, "mean_r"))
    tables["partition_voxels"], tables["partition"] = pipeline.partition_spaces(exp, data, spaces)
    res = Results(exp, tables, recording=rec, manifest=None)
    return dict(res=res, vertices=vertices, planted=planted)


def _pngs(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b)))
            for b in re.findall(r'src="data:image/png;base64,([^"]*)"', html)]


def test_fsaverage_meshes_are_nested_so_finer_data_can_be_read_at_fsaverage5():
    """The shipped fsaverage5 sphere: every vertex past the first 2562 (fsaverage4) is the normalised midpoint of
    two fsaverage4 neighbours. :func:`figures.surface_map` draws fsaverage6/7 data at their first 10242 vertices
    on this ground."""
    from nilearn import datasets

    mesh = datasets.load_fsaverage("fsaverage5")["sphere"].parts["left"]
    coords, faces = np.asarray(mesh.coordinates, dtype=np.float64), np.asarray(mesh.faces)
    unit = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    coarse = figures.FSAVERAGE_VERTICES["fsaverage4"]
    err = np.full(coords.shape[0], np.inf)
    # every new vertex: the closest normalised midpoint of two coarse vertices it shares a face with
    nb = [[] for _ in range(coords.shape[0])]
    for f in faces:
        for i in range(3):
            nb[f[i]].extend(int(f[j]) for j in range(3) if j != i)
    for v in range(coarse, coords.shape[0]):
        old = sorted({w for w in nb[v] if w < coarse})
        mids = [(unit[p] + unit[q]) / np.linalg.norm(unit[p] + unit[q]) for i, p in enumerate(old) for q in old[i + 1:]]
        err[v] = min(np.linalg.norm(m - unit[v]) for m in mids)
    assert np.all(err[coarse:] < 1e-3), err[coarse:].max()
    assert coords.shape[0] == figures.FSAVERAGE_VERTICES["fsaverage5"]


def test_hemisphere_values_put_every_column_on_its_vertex():
    vertices = np.array([5, 0, N5 + 7, 2 * N5 + 1])  # the last one is not cortical (e.g. a CIFTI subcortical one)
    left, right, other = figures.hemisphere_values(np.array([1.0, 2.0, 3.0, 4.0]), vertices, (N5, N5))
    assert left[5] == 1 and left[0] == 2 and right[7] == 3 and other.tolist() == [4.0]
    assert np.isnan(left).sum() == N5 - 2 and np.isnan(right).sum() == N5 - 1
    with pytest.raises(ValueError, match="one vertex per value"):
        figures.hemisphere_values(np.zeros(3), vertices, (N5, N5))


def test_surface_results_round_trip(surface_results, tmp_path):
    res = surface_results["res"]
    assert res.mask_img is None and res.surface["space"] == "fsaverage5"
    assert res.manifest["data"]["space"] == "fsaverage5" and res.manifest["data"]["n_vertices"] == [N5, N5]
    back = Results.load(res.save(tmp_path))
    assert back.surface["space"] == "fsaverage5" and back.surface["n_vertices"] == (N5, N5)
    np.testing.assert_array_equal(back.surface["vertices"], surface_results["vertices"])
    assert not (tmp_path / "mask.nii.gz").exists()


def test_planted_vertices_are_the_significant_ones(surface_results):
    vox = surface_results["res"].tables["voxel_scores"]
    sig = vox[vox.space == "m/action/L0"].sort_values("voxel")["significant"].to_numpy(dtype=bool)
    planted = surface_results["planted"]
    assert sig[planted].mean() > 0.9 and sig[~planted].mean() < 0.1


def test_report_draws_surface_maps_offline(surface_results, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("the report tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    res = surface_results["res"]
    html = render_report(res)
    vox = res.tables["voxel_scores"]
    n_sig = int(vox[vox.space == "m/action/L0"]["significant"].sum())
    assert "r per vertex: m/action/L0" in html
    assert f"are coloured: {n_sig} of {len(surface_results['vertices'])}" in html  # FDR-thresholded map
    assert "FDR q &lt;" in html or "FDR q <" in html
    assert "vertices on fsaverage5" in html and "dominant part" in html
    imgs = _pngs(html)
    assert len(imgs) >= 4 and all(im.width > 300 for im in imgs)
    assert html == render_report(res)  # deterministic


def test_surface_map_shows_the_planted_region_in_colour():
    """Values planted on the frontal half (y > 0) of fsaverage5: the left lateral panel is coloured on its frontal
    side (the left of the image) and grey behind."""
    left, right = _sphere()
    values = 0.6 * np.concatenate([(left[:, 1] > 0), (right[:, 1] > 0)])
    png, note = figures.surface_map(values, np.arange(2 * N5), (N5, N5), "fsaverage5", "planted", vmax=1.0)
    assert note == ""
    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    panel = im[:, : im.shape[1] // 4 - 40]  # left lateral view: anterior is to the left
    colourful = (np.abs(panel[..., 0] - panel[..., 2]) > 60)  # warm colours, not grey shading
    cols = np.flatnonzero(colourful.any(0))
    assert cols.size > 20
    front, back = colourful[:, : panel.shape[1] // 2].sum(), colourful[:, panel.shape[1] // 2:].sum()
    assert front > 3 * back, (front, back)
    # and the colour is the colour bar's: +0.6 of a symmetric ±1 scale is cold_hot's red-orange, not its blue side
    cold = (panel[..., 2] - panel[..., 0] > 60).sum()
    assert cold < 0.01 * colourful.sum(), cold


def test_finer_and_foreign_surfaces_are_drawn_without_download(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    n6 = figures.FSAVERAGE_VERTICES["fsaverage6"]
    vals = np.linspace(-1, 1, 2 * n6)
    png, note = figures.surface_map(vals, np.arange(2 * n6), (n6, n6), "fsaverage6", "fs6")
    assert "first 10242 vertices" in note and Image.open(io.BytesIO(png)).width > 300
    png, note = figures.surface_map(vals[:2000], np.arange(2000), (1000, 1000), "fsLR_den-91k", "fsLR")
    assert note.startswith("No mesh of fsLR_den-91k") and Image.open(io.BytesIO(png)).width > 300
    with pytest.raises(ValueError, match="one vertex per value"):
        figures.surface_map(vals[:10], np.arange(11), (n6, n6), "fsaverage6", "bad")
