"""Make GX Data Docs readable offline.

GX 1.x pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from public CDNs
and a logo from GX's S3 bucket (with the data context id in its query string). None of those
can be reached here, and a report should not phone home when opened. The pages' content
(every expectation, its status and observed values) is plain HTML; only the styling and the
charts come from the CDNs. So the external tags are removed, a small stylesheet is inlined,
and the GX stylesheet and fonts the site ships under `static/` stay.
"""

from __future__ import annotations

import re
from pathlib import Path

_EXTERNAL = re.compile(
    r"""<script[^>]*\bsrc=["']https?://[^"']*["'][^>]*>\s*</script>"""
    r"""|<link[^>]*\bhref=["']https?://[^"']*["'][^>]*>"""
    r"""|<img[^>]*\bsrc=["']https?://[^"']*["'][^>]*>""",
    re.IGNORECASE)
_STYLE = """<style>/* churnctl: offline, in place of the CDN's Bootstrap */
body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left;vertical-align:top}.collapse:not(.show){display:block}
.badge-danger,.text-danger{color:#b00}.badge-success,.text-success{color:#070}</style>"""


_CSS_URL = re.compile(r"""url\(\s*["']?https?://[^"')]*["']?\s*\)""", re.IGNORECASE)


def offline_html(text: str) -> str:
    """The page without references to outside resources, with a minimal inline stylesheet."""
    text = _CSS_URL.sub("none", _EXTERNAL.sub("", text))
    return text.replace("</head>", f"{_STYLE}</head>", 1)


def external_references(text: str) -> list[str]:
    """Outside resources a page would load (scripts, stylesheets, images, CSS urls)."""
    loads = re.findall(r"""<(?:script|img|iframe)[^>]*\bsrc=["'](https?://[^"']+)""", text,
                       re.IGNORECASE)
    loads += re.findall(r"""<link[^>]*\bhref=["'](https?://[^"']+)""", text, re.IGNORECASE)
    loads += re.findall(r"""url\(\s*["']?(https?://[^"')]+)""", text, re.IGNORECASE)
    loads += re.findall(r"""@import\s+["'](https?://[^"']+)""", text, re.IGNORECASE)
    return loads


def make_offline(site: Path) -> None:
    """Rewrite every page offline; drop the ~3 MB of GX's static images no page shows."""
    used: set[str] = set()
    for page in [*site.rglob("*.html"), *site.rglob("*.css")]:
        text = page.read_text(encoding="utf-8")
        fixed = offline_html(text) if page.suffix == ".html" else text
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")
        used.update(re.findall(r"images/([\w.-]+)", fixed))
    images = site / "static" / "images"
    for image in images.iterdir() if images.is_dir() else []:
        if image.name not in used:
            image.unlink()
