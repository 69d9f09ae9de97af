"""The demo's report opened in a real headless Chromium (Debian's package), driven by Playwright."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from brainalign.report.html import render_report, write_report
from brainalign.report.results import Results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("BRAINALIGN_REQUIRE_BROWSER") == "1"

if CHROMIUM is None:
    if REQUIRED:
        raise RuntimeError("BRAINALIGN_REQUIRE_BROWSER=1 but no chromium on PATH; `apt-get install chromium`.")
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
XSS = "<script>alert(1)</script> {stimulus}"


def _open(path):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    page = browser.new_page()
    seen = dict(console_errors=[], requests=[], dialogs=[])
    page.on("console", lambda m: seen["console_errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["console_errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return pw, browser, page, seen


@pytest.fixture(scope="module")
def xss_report(demo_dir, tmp_path_factory):
    res = Results.load(demo_dir)
    res.experiment.prompts["hostile"] = XSS
    out = tmp_path_factory.mktemp("xss")
    return write_report(res, out)


def test_demo_report_renders_in_chromium(demo_dir):
    pw, browser, page, seen = _open(demo_dir / "report.html")
    try:
        n_img = page.locator("img").count()
        decoded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        n_tables = page.locator("table").count()
        page.locator("summary", has_text="Configuration").click()
        config_visible = page.locator("pre").first.is_visible()
    finally:
        browser.close()
        pw.stop()
    assert n_img >= 5 and all(decoded), decoded
    assert n_tables >= 1
    assert config_visible
    assert seen["console_errors"] == []
    external = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
    assert external == []


def test_user_text_is_escaped(xss_report):
    pw, browser, page, seen = _open(xss_report)
    try:
        table_text = page.locator("#prompts").inner_text()
    finally:
        browser.close()
        pw.stop()
    assert seen["dialogs"] == []
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
