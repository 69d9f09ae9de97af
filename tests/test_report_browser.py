"""The demo's report opened in a real headless Chromium (Debian's package), driven by Playwright."""
from __future__ import annotations

import time

import pytest

from brainalign.report.html import render_report, write_report
from brainalign.report.results import Results
from chromium import Page, require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]
XSS = "<script>alert(1)</script> {stimulus}"


@pytest.fixture(autouse=True)
def _chromium():
    require_chromium()


@pytest.fixture(scope="module")
def xss_report(demo_dir, tmp_path_factory):
    res = Results.load(demo_dir)
    res.experiment.prompts["hostile"] = XSS
    out = tmp_path_factory.mktemp("xss")
    return write_report(res, out)


def test_demo_report_renders_in_chromium(demo_dir):
    with Page(demo_dir / "report.html") as p:
        p.screenshot("demo")
        n_tables = p.page.locator("table").count()
        p.page.locator("summary", has_text="Configuration").click()
        config_visible = p.page.locator("pre").first.is_visible()
    seen = p.seen
    seen.assert_reads_at_a_glance(["Scores along the model's depth", "Prompts and baselines", "Controls", "Maps"])
    assert len(seen.images_decoded) >= 5
    assert n_tables >= 1
    assert config_visible


def test_user_text_is_escaped(xss_report):
    with Page(xss_report) as p:
        table_text = p.page.locator("#prompts").inner_text()
    assert p.seen.dialogs == []
    assert "<script>alert(1)</script>" in table_text


def test_report_is_fast_small_and_deterministic(demo_dir):
    res = Results.load(demo_dir)
    t0 = time.perf_counter()
    a = render_report(res)
    elapsed = time.perf_counter() - t0
    b = render_report(Results.load(demo_dir))
    assert elapsed < 30
    assert len(a.encode()) < 10 * 2**20
    assert a == b  # same results give byte-identical HTML (the timestamp comes from the manifest)
