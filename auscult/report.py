"""Self-contained HTML reports (plots embedded as PNG), as KFP's UI and a browser both render them."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.good{color:#176b2c;font-weight:bold}.bad{color:#a11;font-weight:bold}
img{max-width:100%}
"""


def figure(fig: plt.Figure) -> str:
    """An <img> holding ``fig`` as PNG; closes the figure."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


_HEADING = re.compile(r"<h2>(.*?)</h2>")
_IMAGE = re.compile(r'<img alt="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def figures_of(page_html: str) -> list[dict[str, str]]:
    """The plots of a page that :func:`page` wrote, each with the heading it stands under: what a run report
    shows of a stage without its tables, which may name files."""
    found, heading = [], ""
    for match in re.finditer(f"{_HEADING.pattern}|{_IMAGE.pattern}", page_html):
        if match.group(1) is not None:
            heading = html.unescape(match.group(1))
        else:
            found.append({"caption": heading, "png": match.group(2)})
    return found


def image(png_base64: str, caption: str) -> str:
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png_base64}"><figcaption>' + (
        f"{html.escape(caption)}</figcaption></figure>"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def verdict(ok: bool, text: str) -> str:
    return f'<p class="{"good" if ok else "bad"}">{html.escape(text)}</p>'


def bullets(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(heading)}</h2>{content}" for heading, content in sections)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table, as KFP's UI renders a Markdown artifact."""

    def cell(value: object) -> str:
        return _fmt(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    """A count as a count (89, not 89.000), a tiny figure in scientific notation (3.6e-07, not 0.000)."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.2e}" if abs(value) < 1e-3 else f"{value:.3f}"
    return "" if value is None else str(value)
