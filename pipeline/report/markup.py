"""The report's HTML building blocks: the style sheet, escaping, tables, embedded images. No run data here."""

from __future__ import annotations

import base64
import datetime
import html
from typing import Any

# ---- HTML -------------------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:0 24px 48px;
color:#1d232a;line-height:1.45}
h1{font-size:1.5em;margin:24px 0 4px} h2{font-size:1.2em;margin:32px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
h3{font-size:1em;margin:18px 0 6px} .muted{color:#667} code,pre{font-family:SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
pre{background:#f5f6f8;padding:10px;overflow-x:auto;border-radius:4px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:.92em} th,td{border:1px solid #dde;padding:3px 8px;text-align:left}
th{background:#f2f4f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:12px 16px;border-radius:6px;margin:12px 0;font-weight:600}
.ok{background:#e6f4ea;border:1px solid #9ccfaa} .bad{background:#fdecea;border:1px solid #f2a7a0}
.warn{background:#fff6e0;border:1px solid #f0d08a} .pass{color:#137333;font-weight:600} .fail{color:#c5221f;font-weight:600}
img{max-width:100%} nav a{margin-right:10px;font-size:.9em} .bar{background:#8ab4f8;height:10px;display:inline-block}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and float(v).is_integer() and digits == 0:
        return str(int(v))
    return f"{v:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """``rows`` are HTML cells (already escaped) when ``raw``; else plain text, escaped here."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            if raw and c.startswith("<td"):
                cells.append(c)
            else:
                cells.append(f"<td>{c if raw else esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _td(value: str, key: str | None = None, num: bool = False, cls: str = "") -> str:
    classes = " ".join(x for x in ("num" if num else "", cls) if x)
    attrs = (f' class="{classes}"' if classes else "") + (f' data-key="{esc(key)}"' if key else "")
    return f"<td{attrs}>{esc(value)}</td>"


def _img(name: str, data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{esc(alt)}" data-file="{esc(name)}">'


def _when(ms: int) -> str:
    if not ms:
        return "?"
    return datetime.datetime.fromtimestamp(ms / 1000.0).strftime("%Y-%m-%d %H:%M:%S")
