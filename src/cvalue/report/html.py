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

__all__ = ["Section", "render", "write_report"]


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
    """

    key: str
    title: str
    paragraphs: Sequence[str] = ()
    tables: Sequence[tuple[str, pd.DataFrame]] = field(default_factory=tuple)
    figures: Sequence[tuple[str, Figure]] = field(default_factory=tuple)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_id(figure: Figure) -> str:
    """The figure's ``id`` in the page: ``plot-`` and its label (the plot it shows), or none."""
    label = figure.get_label()
    return f"plot-{label}" if label else ""


def _number(value: float) -> str:
    """Four significant digits, but whole amounts in full with separators (12,345 not 1.234e+04)."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.4g}"


def _table(caption: str, table: pd.DataFrame) -> Markup:
    # to_html escapes the cells; the caption goes through the same escaping
    html = table.to_html(float_format=_number, escape=True, border=0)
    return Markup(html.replace("<thead>", f"<caption>{Markup.escape(caption)}</caption><thead>", 1))


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
        }
        for section in sections
    ]
    return environment.get_template("report.html.j2").render(
        title=title,
        sections=rendered,
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
