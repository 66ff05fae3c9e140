"""One self-contained HTML file from report sections: tables inline, figures as inlined PNGs.

The file needs no network and no other file: styles are in the page and every image is a
``data:`` URL, so it can be mailed, archived or opened from a shared drive.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

from cvalue._version import __version__
from cvalue.report.labels import formatter, labelled

__all__ = ["Highlight", "Section", "render", "write_report"]


@dataclass(frozen=True, slots=True)
class Highlight:
    """One figure of a headline block: what it is, its value, and a line that explains it.

    Attributes
    ----------
    key
        Its ``id`` in the page, prefixed ``headline-``.
    title, value
        What the figure is (``"Customer equity, 3 years"``) and its value, written out
        (``"60,782"``).
    detail
        One line: the interval or the count behind the value, and what it means.
    """

    key: str
    title: str
    value: str
    detail: str


@dataclass(frozen=True, slots=True)
class Section:
    """One part of the report.

    Attributes
    ----------
    key
        The section's anchor (``id``) in the page, such as ``"model-fit"``.
    title
        Its heading.
    paragraphs
        Plain-text paragraphs (escaped).
    tables
        ``(caption, table)`` pairs.
    figures
        ``(caption, figure)`` pairs. A figure's label (``figure.set_label``), when it has one, is
        its ``id`` in the page, prefixed ``plot-``.
    highlights
        The figures of a headline block, shown first and large. A first section with
        highlights leads the page, above the table of contents.
    links
        ``(text, href)`` pairs: files beside the report (relative addresses), such as its CSV.
    """

    key: str
    title: str
    paragraphs: Sequence[str] = ()
    tables: Sequence[tuple[str, pd.DataFrame]] = field(default_factory=tuple)
    figures: Sequence[tuple[str, Figure]] = field(default_factory=tuple)
    highlights: Sequence[Highlight] = ()
    links: Sequence[tuple[str, str]] = ()


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_id(figure: Figure) -> str:
    """The figure's ``id`` in the page: ``plot-`` and its label (the plot it shows), or none."""
    label = figure.get_label()
    return f"plot-{label}" if label else ""


def _table(caption: str, table: pd.DataFrame) -> Markup:
    """The table's HTML: readable labels, the report's number formats, in a scrolling box.

    An unnamed default index (0, 1, 2 ...) is left out: the rows are then data of their own.
    The box scrolls sideways when the table is wider than the page, so the page never does.
    """
    shown = labelled(table)
    formatters = {
        column: found
        for column, original in zip(shown.columns, table.columns, strict=True)
        if (found := formatter(original, table[original])) is not None
    }
    has_index = not (isinstance(table.index, pd.RangeIndex) and table.index.name is None)
    is_text = not any(pd.api.types.is_numeric_dtype(dtype) for dtype in table.dtypes)
    # to_html escapes the cells; the caption goes through the same escaping
    html = shown.to_html(formatters=formatters, escape=True, border=0, index=has_index,
                         na_rep="n/a", classes="text" if is_text else None)  # fmt: skip
    html = html.replace("<thead>", f"<caption>{Markup.escape(caption)}</caption><thead>", 1)
    return Markup(f'<div class="table-scroll">{html}</div>')


def render(sections: Sequence[Section], *, title: str = "Customer value report") -> str:
    """The HTML page of ``sections``."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("cvalue.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    rendered = [
        {
            "key": section.key,
            "title": section.title,
            "paragraphs": list(section.paragraphs),
            "tables": [(caption, _table(caption, table)) for caption, table in section.tables],
            "images": [
                (caption, _figure_id(figure), _png(figure)) for caption, figure in section.figures
            ],
            "highlights": list(section.highlights),
            "links": list(section.links),
        }
        for section in sections
    ]
    n_lead = 1 if sections and sections[0].highlights else 0
    return environment.get_template("report.html.j2").render(
        title=title,
        lead=rendered[:n_lead],
        sections=rendered[n_lead:],
        version=__version__,
        generated_at=pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(
    path: str | Path, sections: Sequence[Section], *, title: str = "Customer value report"
) -> Path:
    """Write the report of ``sections`` to ``path`` (folders made as needed); return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(sections, title=title), encoding="utf-8")
    return target
