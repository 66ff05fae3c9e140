"""The demo's report in headless Chromium, 1400 and 390 CSS pixels wide, against a reference.

At each width the page must open without a console error, never scroll sideways (tables scroll
in their own boxes), and lead with the headline. Its look is compared with the reference in
``tests/data/report_reference/``, two ways that font rendering and the run's timestamp cannot
upset but a changed report does:

- ``layout-<width>.json``: the box (left, top, width, height in CSS pixels, read in the page) of
  the headline's figures, every section, every table box and every figure, which must all be
  there and within ``LAYOUT_TOLERANCE`` px of where they were;
- ``page-<width>.png``: the whole page in grayscale, shrunk ``SHRINK`` times; the mean absolute
  difference of the two (in levels of 0-255) must be below ``MEAN_TOLERANCE`` and few of their
  pixels may differ by more than ``PIXEL_TOLERANCE`` levels.

The "Generated ..." line is fixed before the capture, and the report is built from the demo
(``cvalue demo --customers 1000``, seeded) with fixed stages and timings, so every run of the test
on a machine draws the same page. After a deliberate change of the report's look, regenerate the
references and look at the new images before committing them::

    CVALUE_UPDATE_REFERENCE=1 pytest -n0 tests/test_report_browser.py

(a different machine's fonts can move text by a pixel or two: the tolerances take that, not a
different font family). The full-size screenshots of the last run are left in pytest's temporary
folder (``page-<width>.png``), and the test's message names them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvalue.job import JobResult
from cvalue.report import build_report
from cvalue.segments import at_risk_valuable
from tests.conftest import Browser

REFERENCE = Path(__file__).parent / "data" / "report_reference"
WIDTHS = (1400, 390)
SHRINK = 8
LAYOUT_TOLERANCE = 4  # px
MEAN_TOLERANCE = 1.5  # levels of 0-255, over the whole shrunk page
PIXEL_TOLERANCE, MOST_PIXELS = 48, 0.005  # at most 0.5 % of the shrunk pixels differ by 48+
IS_UPDATE = os.environ.get("CVALUE_UPDATE_REFERENCE") == "1"

_LAYOUT = """
const box = element => {
  const r = element.getBoundingClientRect();
  return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height].map(Math.round);
};
const found = {};
document.querySelectorAll("#headline .highlight").forEach(e => { found[e.id] = box(e); });
document.querySelectorAll("body > section").forEach(section => {
  found[section.id] = box(section);
  section.querySelectorAll(".table-scroll").forEach((e, i) => {
    found[`${section.id}/table-${i + 1}`] = box(e);
  });
  section.querySelectorAll("figure").forEach((e, i) => {
    found[`${section.id}/figure-${i + 1}`] = box(e);
  });
});
return found;
"""
_FIX_TIMESTAMP = (
    "document.getElementById('generated').textContent = 'Generated (time fixed for comparison).'"
)


@pytest.fixture(scope="module")
def demo_report(demo_run: tuple[Path, JobResult], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's report with its at-risk list, and fixed stage timings."""
    folder = tmp_path_factory.mktemp("reference")
    result = demo_run[1]
    assert result.scores is not None
    listed = at_risk_valuable(result.scores["clv_5y"], result.scores["p_alive"])
    # the seconds differ from run to run, and the stages as the job grows: both fixed here
    timings = dict.fromkeys(("read and validate", "lifecycle", "summarise and fit", "value",
                             "segments"), 1.0)  # fmt: skip
    return build_report(dataclasses.replace(result, at_risk=listed, timings=timings),
                        folder / "reference.html")  # fmt: skip


def _layout(browser: Browser) -> dict[str, list[int]]:
    return dict(browser.script(_LAYOUT))  # type: ignore[call-overload]


def _shrunk(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as page:
        return page.convert("L").reduce(SHRINK)


def compare(
    layout: dict[str, list[int]], image: Image.Image, width: int
) -> list[str]:  # fmt: skip
    """What differs from the reference at ``width``: one line per problem (none: the same)."""
    expected = json.loads((REFERENCE / f"layout-{width}.json").read_text(encoding="utf-8"))
    problems = [f"layout: {name} is {'missing' if name in expected else 'new'}"
                for name in sorted(set(expected) ^ set(layout))]  # fmt: skip
    for name in sorted(set(expected) & set(layout)):
        moved = np.abs(np.subtract(layout[name], expected[name]))
        if moved.max() > LAYOUT_TOLERANCE:
            problems.append(f"layout: {name} at {layout[name]}, was {expected[name]}")
    with Image.open(REFERENCE / f"page-{width}.png") as stored:
        reference = np.asarray(stored.convert("L"), dtype=np.float64)
    found = np.asarray(image, dtype=np.float64)
    if found.shape != reference.shape:
        return [*problems, f"image: {found.shape} pixels, was {reference.shape}"]
    difference = np.abs(found - reference)
    if difference.mean() > MEAN_TOLERANCE:
        problems.append(f"image: mean difference {difference.mean():.2f} > {MEAN_TOLERANCE}")
    share = float((difference > PIXEL_TOLERANCE).mean())
    if share > MOST_PIXELS:
        problems.append(f"image: {share:.2%} of the pixels differ by more than {PIXEL_TOLERANCE}")
    return problems


def _update(layout: dict[str, list[int]], image: Image.Image, width: int) -> None:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    boxes = (f"  {json.dumps(name)}: {json.dumps(box)}" for name, box in sorted(layout.items()))
    text = "{\n" + ",\n".join(boxes) + "\n}\n"  # a box a line: a change reads in a diff
    (REFERENCE / f"layout-{width}.json").write_text(text, encoding="utf-8")
    image.save(REFERENCE / f"page-{width}.png", optimize=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_fits_the_page_and_looks_as_its_reference(
    demo_report: Path, browser: Browser, width: int, tmp_path: Path
) -> None:
    with browser.at_width(width):
        browser.open(demo_report)
        assert browser.console_errors() == []
        assert browser.broken_images() == 0
        assert browser.script("return window.innerWidth") == width
        scroll_width = browser.script("return document.documentElement.scrollWidth")
        assert scroll_width <= width  # the page itself never scrolls sideways
        first = browser.script(
            "return [...document.body.children].map(e => e.tagName + '#' + e.id)"
        )
        assert first[:4] == ["H1#", "P#generated", "SECTION#headline", "NAV#"]  # type: ignore[index]
        boxes = browser.script(
            "return [...document.querySelectorAll('.table-scroll')]"
            ".map(e => [e.getBoundingClientRect().right, e.scrollWidth > e.clientWidth])"
        )  # type: ignore[assignment]
        assert all(right <= width for right, _ in boxes)  # type: ignore[union-attr]
        n_scrolling = sum(is_scrolling for _, is_scrolling in boxes)  # type: ignore[union-attr]
        # a phone scrolls the wide tables in their boxes; a desktop screen shows them whole
        assert n_scrolling >= 3 if width < 500 else n_scrolling == 0
        browser.script(_FIX_TIMESTAMP)
        layout, png = _layout(browser), browser.screenshot()
    shot = tmp_path / f"page-{width}.png"
    shot.write_bytes(png)
    image = _shrunk(png)
    if IS_UPDATE:
        _update(layout, image, width)
    problems = compare(layout, image, width)
    assert not problems, f"the page differs from its reference (screenshot: {shot}):\n" + (
        "\n".join(problems[:20]))  # fmt: skip


def test_the_comparison_sees_a_moved_block_and_a_changed_picture(
    demo_report: Path, browser: Browser
) -> None:
    width = WIDTHS[0]
    with browser.at_width(width):
        browser.open(demo_report)
        browser.script(_FIX_TIMESTAMP)
        browser.script("document.querySelectorAll('figure img')"
                       ".forEach(image => { image.style.visibility = 'hidden'; })")  # fmt: skip
        hidden = compare(_layout(browser), _shrunk(browser.screenshot()), width)
        browser.script("document.getElementById('headline').style.padding = '3rem'")
        moved = compare(_layout(browser), _shrunk(browser.screenshot()), width)
    # the plots gone: the same boxes, another picture
    assert hidden
    assert all(problem.startswith("image: ") for problem in hidden)
    # the headline taller: everything below it moved
    assert any(problem.startswith("layout: data-quality at") for problem in moved)
