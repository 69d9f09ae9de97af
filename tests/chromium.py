"""Open a report in a real headless Chromium (Debian's package) through Playwright, the way a reader would.

One helper for every report test (the demo's, each study miniature's, the steering report): it records console
errors, network requests and dialogs, checks that every image decodes, reads what a reader sees first, and saves a
full-page screenshot into the test artefacts (``$BRAINALIGN_ARTEFACTS``, default ``test-artefacts/`` at the
repository root, git-ignored) so a person can look at every study's report after a CI run.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("BRAINALIGN_REQUIRE_BROWSER") == "1"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTEFACTS = Path(os.environ.get("BRAINALIGN_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts"))


def require_chromium() -> str:
    """Chromium's path; skips the test where it is not installed, unless CI demands it (.ci/run does)."""
    if CHROMIUM is None:
        if REQUIRED:
            raise RuntimeError("BRAINALIGN_REQUIRE_BROWSER=1 but no chromium on PATH; `apt-get install chromium`.")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return CHROMIUM


@dataclass
class Seen:
    """What the page did and showed."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    images_decoded: list[bool] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    headline: str = ""
    table_rows: dict[str, int] = field(default_factory=dict)  # table id (or its index) → body rows shown
    contents: list[str] = field(default_factory=list)  # the section links under the headline
    contents_resolve: bool = False  # every link of the contents line lands on a section
    first_image_top: float | None = None  # px from the top of the page
    viewport_height: int = 0
    screenshot: Path | None = None

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:"))]

    def assert_clean(self) -> None:
        """No script error, nothing fetched from outside the file, every image decoded."""
        assert self.console_errors == [], self.console_errors
        assert self.external_requests == [], self.external_requests
        assert self.dialogs == [], self.dialogs
        assert self.images_decoded and all(self.images_decoded), self.images_decoded

    def assert_reads_at_a_glance(self, sections: list[str], max_rows: int = 20) -> None:
        """A study report a reader takes in at a glance: a headline that names a fitted space, a contents line
        listing every section (each link lands), the sections named present, no table longer than ``max_rows``
        rows in the page (long tables are CSV downloads), and a figure within the first two screens."""
        self.assert_clean()
        assert self.headline and "No model feature space" not in self.headline, self.headline
        assert self.contents == self.headings and self.contents_resolve, (self.contents, self.headings)
        missing = [s for s in sections if s not in self.headings]
        assert not missing, (missing, self.headings)
        long = {t: n for t, n in self.table_rows.items() if n > max_rows}
        assert not long, long
        assert self.first_image_top is not None and self.first_image_top < 2 * self.viewport_height


class Page:
    """A report opened in Chromium: use as a context manager; ``page`` is Playwright's page."""

    def __init__(self, path: Path, *, width: int = 1280, height: int = 900):
        self.path, self.size = Path(path), {"width": width, "height": height}
        self.seen = Seen(viewport_height=height)

    def __enter__(self) -> Page:
        from playwright.sync_api import sync_playwright

        chromium = require_chromium()
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        self.page = self._browser.new_page(viewport=self.size)
        s = self.seen
        self.page.on("console", lambda m: s.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: s.console_errors.append(str(e)))
        self.page.on("request", lambda r: s.requests.append(r.url))
        self.page.on("dialog", lambda d: (s.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.path.as_uri())
        self.page.wait_for_load_state("load")
        self._read()
        return self

    def __exit__(self, *exc) -> None:
        self._browser.close()
        self._pw.stop()

    def _read(self) -> None:
        s, page = self.seen, self.page
        s.images_decoded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        s.headings = [t.strip() for t in page.locator("h2").all_inner_texts()]
        head = page.locator("p", has_text="Headline.")
        s.headline = head.first.inner_text() if head.count() else ""
        s.table_rows = page.evaluate(
            "Object.fromEntries(Array.from(document.querySelectorAll('table')).map((t, i) =>"
            " [t.id || String(i), t.tBodies.length ? t.tBodies[0].rows.length : t.rows.length - 1]))")
        s.contents = [t.strip() for t in page.locator("nav.contents a").all_inner_texts()]
        s.contents_resolve = page.evaluate(
            "Array.from(document.querySelectorAll('nav.contents a')).every(a => {"
            " const t = document.getElementById(a.getAttribute('href').slice(1));"
            " return t && t.nextElementSibling && t.nextElementSibling.tagName === 'H2'"
            " && t.nextElementSibling.textContent === a.textContent; })")
        s.first_image_top = page.evaluate(
            "document.images.length ? document.images[0].getBoundingClientRect().top + window.scrollY : null")

    def screenshot(self, name: str) -> Path:
        """Full-page PNG in the test artefacts (``screenshots/<name>.png``); returns its path."""
        out = ARTEFACTS / "screenshots" / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(out), full_page=True)
        self.seen.screenshot = out
        return out


def open_report(path: Path, screenshot: str | None = None) -> Seen:
    """Open ``path`` in Chromium, read what it shows, optionally save a screenshot; returns :class:`Seen`."""
    with Page(path) as p:
        if screenshot:
            p.screenshot(screenshot)
    return p.seen
