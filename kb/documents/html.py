"""HTML pages: the main text with its headings, lists, tables and code as the author set them.

trafilatura finds the main content (menus, footers, hidden dialogs and scripts left out) and gives
it as XML that keeps the structure (``head``, ``p``, ``list``/``item``, ``table``/``row``/``cell``,
block ``code``). That XML is written out here as text: a heading on a line of its own, one
paragraph a line, one list item or table row a line, code as written; heading offsets and levels
go into ``metadata["sections"]`` and code spans into ``metadata["code"]``.

The title is the page's own: ``og:title``, else the heading the main content opens with, else
``<title>`` with the site's name taken off; the site's name goes into ``metadata["site"]``. A page with
too little main text for trafilatura falls back to a plain parse.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from kb.documents.parsed import Parsed, decode_text
from kb.documents.structure import one_line
from kb.errors import UnreadableDocument

SHORT_PAGE_CHARS = 250
_BREAK = "\x00"  # an explicit line break (<br>), kept while the source's own line breaks are collapsed
_SEPARATORS = (" | ", " - ", " — ", " – ", " · ", " :: ", " » ")


def read_html(raw: bytes) -> list[Parsed]:
    markup = decode_text(raw)
    import trafilatura
    from lxml import etree

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    try:
        xml = trafilatura.extract(markup, output_format="xml", with_metadata=True, include_comments=False,
                                  include_tables=True, include_formatting=False, include_links=False,
                                  include_images=False)
        tree = etree.fromstring(xml.encode("utf-8")) if xml else None
    except Exception:  # trafilatura and lxml raise a variety of parser errors on broken markup
        tree = None
    fallback = parse_html(markup)  # the page's <title> and meta tags, and its text should trafilatura find too little
    head = {"title": fallback.title_tag, "og_title": fallback.meta.get("og:title", ""),
            "site": fallback.meta.get("og:site_name") or fallback.meta.get("application-name", "")}
    text, sections, code, metadata = "", [], [], {}
    if tree is not None:
        writer = _Writer()
        main = tree.find("main")
        for element in (main if main is not None else tree):
            writer.block(element)
        text, sections, code = writer.result()
        metadata = {key: tree.get(key) for key in ("author", "date", "url") if tree.get(key)}
    if len(text) < SHORT_PAGE_CHARS:
        # On short pages trafilatura's fallbacks keep menus and break inline tags into lines.
        text, sections, code = fallback.text, fallback.sections, []
    first_heading = sections[0][2] if sections and sections[0][0] == 0 else ""  # the main text opens with it
    found = (tree.get("sitename") or "", tree.get("title") or "") if tree is not None else ("", fallback.title)
    title, site = page_title(head, first_heading, *found)
    if site:
        metadata["site"] = site
    if sections:
        metadata["sections"] = sections
    if code:
        metadata["code"] = code
    return [Parsed(title or fallback.title, text, metadata)]


def page_title(head: dict[str, str], first_heading: str, found_site: str, found_title: str) -> tuple[str, str]:
    """(title, site name) of a page: og:title, else the heading the main text opens with, else <title>
    without the site's name, else trafilatura's guess.

    The site's name is og:site_name; else, when <title> is "page - site" (or "site | page") and one
    side is the main content's first heading, the other side; else trafilatura's guess, unless it
    is the page's own heading.
    """
    site = head["site"]
    separator, parts = _parts(head["title"])
    if not site and len(parts) > 1 and first_heading:
        if _same(parts[0], first_heading):
            site = separator.join(parts[1:])
        elif _same(parts[-1], first_heading):
            site = separator.join(parts[:-1])
    if not site and found_site and not _same(found_site, first_heading):
        site = found_site
    for title in (_without_site(head["og_title"], site), first_heading, _without_site(head["title"], site),
                  found_title):
        if title and not _same(title, site):
            return one_line(title), one_line(site)
    return one_line(first_heading or found_title or head["title"]), one_line(site)


def _without_site(title: str, site: str) -> str:
    separator, parts = _parts(title)
    if site:
        kept = [p for p in parts if not _same(p, site)]
        if len(kept) < len(parts):
            return separator.join(kept)
    return " ".join(title.split())


def _parts(title: str) -> tuple[str, list[str]]:
    title = " ".join(title.split())
    for separator in _SEPARATORS:
        if separator in title:
            return separator, [p.strip() for p in title.split(separator) if p.strip()]
    return "", [title] if title else []


def _same(a: str, b: str) -> bool:
    return bool(a) and one_line(a).casefold() == one_line(b).casefold()


class _Writer:
    """trafilatura's XML elements written out as text, with heading and code offsets."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.length = 0
        self.sections: list[list[Any]] = []
        self.code: list[list[int]] = []

    def _put(self, text: str) -> int:
        if self.pieces:
            self.pieces.append("\n\n")
            self.length += 2
        start = self.length
        self.pieces.append(text)
        self.length += len(text)
        return start

    def block(self, element: Any) -> None:
        tag = element.tag
        if tag == "head":
            title = one_line(_inline(element))
            if title:
                rend = element.get("rend", "")
                level = int(rend[1]) if re.fullmatch(r"h[1-6]", rend) else 2
                self.sections.append([self._put(title), level, title])
        elif tag == "code":
            text = (element.text or "").strip("\n").rstrip()
            if text.strip():
                start = self._put(text)
                self.code.append([start, start + len(text)])
        elif tag == "list":
            lines = list(_items(element, 0))
            if lines:
                self._put("\n".join(lines))
        elif tag == "table":
            rows = [" | ".join(one_line(_inline(cell)) for cell in row.iter("cell")) for row in element.iter("row")]
            rows = [row for row in rows if row.strip(" |")]
            if rows:
                self._put("\n".join(rows))
        elif tag in ("graphic", "comments"):
            return
        else:  # p, quote, and anything else: one paragraph a line, explicit line breaks kept
            lines = [" ".join(line.split()) for line in _inline(element, breaks=True).split(_BREAK)]
            text = "\n".join(line for line in lines if line)
            if text:
                self._put(text)

    def result(self) -> tuple[str, list[list[Any]], list[list[int]]]:
        return "".join(self.pieces), self.sections, self.code


def _inline(element: Any, breaks: bool = False) -> str:
    """The text of an element and its inline children; ``lb`` is a line break when ``breaks``."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == "lb":
            parts.append(_BREAK if breaks else " ")
        elif child.tag not in ("list", "table"):
            parts.append(_inline(child, breaks))
        parts.append(child.tail or "")
    return "".join(parts)


def _items(element: Any, depth: int):
    for item in element.findall("item"):
        text = " ".join(_inline(item).split())
        if text:
            yield "  " * depth + "- " + text
        for nested in item.findall("list"):
            yield from _items(nested, depth + 1)


# A plain parse: the page's head (title, meta tags), and a fallback text for pages trafilatura finds
# no main text in (short pages, fragments).
_SKIP_TAGS = {"script", "style", "nav", "footer", "header", "aside", "noscript", "template", "svg", "form"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "br", "li", "ul", "ol", "table", "tr",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "figcaption", "dd", "dt", "hr",
}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, str] = {}  # og:title, og:site_name, application-name
        self.headings: list[list[Any]] = []  # [level, text] in order
        self._chunks: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._heading: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag == "title" and not self.title and not self._skip_depth:  # the page's, not an <svg>'s
            self._in_title = True
        elif tag == "meta":
            values = dict(attrs)
            key = (values.get("property") or values.get("name") or "").lower()
            if key in ("og:title", "og:site_name", "application-name") and values.get("content"):
                self.meta.setdefault(key, " ".join(str(values["content"]).split()))
        elif re.fullmatch(r"h[1-6]", tag) and not self._skip_depth:
            self._heading = [int(tag[1]), ""]
        if tag in _BLOCK_TAGS:
            self._chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip_depth:
            self._skip_depth -= 1
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            if one_line(self._heading[1]):
                self.headings.append([self._heading[0], one_line(self._heading[1])])
            self._heading = None
        if tag in _BLOCK_TAGS:
            self._chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip_depth:
            return
        if self._heading is not None:
            self._heading[1] += data
        self._chunks.append(data)

    def text(self) -> str:
        joined = "".join(self._chunks)
        lines = [" ".join(line.split()) for line in joined.split("\n")]
        return "\n".join(line for line in lines if line)


@dataclass
class PlainPage:
    title: str  # <title>, else the first heading
    text: str
    sections: list[list[Any]]
    title_tag: str  # <title> alone
    meta: dict[str, str]


def parse_html(markup: str) -> PlainPage:
    """An HTML page by a plain parse: scripts, styles, navigation and footers dropped; headings on lines of their own."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything it raises means unparsable input
        raise UnreadableDocument(f"HTML could not be parsed ({exc})") from None
    text = parser.text()
    sections, offset, pending = [], 0, list(parser.headings)
    for line in text.split("\n"):
        if pending and line == pending[0][1]:
            level, title = pending.pop(0)
            sections.append([offset, level, title])
        offset += len(line) + 1
    first_heading = parser.headings[0][1] if parser.headings else ""
    title_tag = " ".join(parser.title.split())
    return PlainPage(title_tag or first_heading, text, sections, title_tag, parser.meta)
