"""Civitai's description HTML -> safe Markdown for Textual's ``Markdown`` widget (pure).

Civitai descriptions are user-written HTML (TipTap output: ``<p>``, ``<strong>``, lists,
links, images, sometimes ``<iframe>`` embeds and ``<script>``-looking junk). The output:

* keeps paragraphs, line breaks, headings (at most ``###``), bold/italic/strike/code, lists,
  block quotes, code blocks, rules and links;
* drops scripts, styles, embeds, forms and media; images become their alt text;
* keeps only ``http(s)`` link targets (no ``javascript:``, ``data:`` or relative URLs);
* escapes every Markdown and HTML metacharacter in the text itself, so a description
  cannot inject markup (and raw HTML never reaches the Markdown parser).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

__all__ = ["html_to_markdown"]

#: Elements whose whole content is dropped.
_SKIP = frozenset(
    {
        "script",
        "style",
        "iframe",
        "object",
        "noscript",
        "svg",
        "template",
        "head",
        "title",
        "button",
        "form",
        "select",
        "textarea",
        "video",
        "audio",
        "canvas",
        "math",
    }
)
_VOID_SKIP = frozenset({"embed", "source", "track", "input", "link", "meta", "base", "param"})
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "figure",
        "figcaption",
        "table",
        "thead",
        "tbody",
        "tr",
        "dl",
        "dt",
        "dd",
        "center",
        "details",
        "summary",
        "main",
        "aside",
    }
)
_EMPHASIS = {
    "strong": "**",
    "b": "**",
    "em": "*",
    "i": "*",
    "s": "~~",
    "del": "~~",
    "strike": "~~",
    "code": "`",
}
_ESCAPE = re.compile(r"([\\`*_\[\]<>|~{}])")
_LINE_START = re.compile(r"^(#|[-+=]|\d+[.)])")
_MAX_CHARS = 50_000


def html_to_markdown(html: str | None, *, max_chars: int = _MAX_CHARS) -> str:
    """Sanitized Markdown for ``html``; empty string for ``None`` or empty input."""
    if not html:
        return ""
    converter = _Converter()
    converter.feed(html[: max_chars * 4])
    converter.close()
    from sdlib.formatting import terminal_safe

    text = terminal_safe(converter.result())  # escape sequences in the HTML never reach it
    if len(text) > max_chars:
        text = text[:max_chars].rstrip() + " …"
    return text


def _safe_href(href: str | None) -> str | None:
    if not href:
        return None
    href = href.strip()
    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # Parentheses, spaces and angle brackets would end or break the Markdown link.
    return quote(href, safe=":/?#[]@!$&'*+,;=%-._~")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, bool]] = []  # (text, is_list_item)
        self.line: list[str] = []
        self.skip = 0
        self.pre = 0
        self.quote = 0
        self.heading = 0
        self.lists: list[list[object]] = []  # [tag, counter]
        self.item_prefix: str | None = None
        self.links: list[tuple[int, str | None]] = []
        self.just_opened = False

    # -- output ---------------------------------------------------------------------------
    def result(self) -> str:
        self._block()
        out: list[str] = []
        previous_item = False
        for text, item in self.blocks:
            if not text:  # the end of a list: the next item starts a new one
                previous_item = False
                continue
            if out:
                out.append("\n" if item and previous_item else "\n\n")
            out.append(text)
            previous_item = item
        return "".join(out).strip()

    def _block(self) -> None:
        raw = "".join(self.line)
        self.line = []
        self.links = []
        text = raw if self.pre else raw.strip()
        if not text.strip():
            return
        if not self.pre:
            text = "\n".join(_escape_line_start(line.strip()) for line in text.split("\n"))
        item = self.item_prefix is not None
        if self.item_prefix is not None:
            indent = "  " * max(0, len(self.lists) - 1)
            text = indent + self.item_prefix + text.replace("\n", "\n" + indent + "  ")
            self.item_prefix = None
        if self.heading:
            text = "#" * min(self.heading, 3) + " " + text.replace("\n", " ")
        if self.quote:
            prefix = "> " * self.quote
            text = prefix + text.replace("\n", "\n" + prefix)
        self.blocks.append((text, item))

    # -- parser callbacks ---------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip or tag in _VOID_SKIP:
            return
        if tag in _BLOCKS:
            self._block()
        elif tag == "br":
            self.line.append("\n")
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._block()
            self.heading = int(tag[1])
        elif tag in _EMPHASIS and not self.pre:
            self.line.append(_EMPHASIS[tag])
            self.just_opened = True
        elif tag == "a":
            href = _safe_href(dict(attrs).get("href"))
            self.links.append((len(self.line), href))
            if href:
                self.line.append("[")
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.line.append(f" *{_escape(alt)}* ")
        elif tag in ("ul", "ol"):
            self._block()
            self.lists.append([tag, 0])
        elif tag == "li":
            self._block()
            if self.lists:
                self.lists[-1][1] = int(str(self.lists[-1][1])) + 1
                kind, number = self.lists[-1]
                self.item_prefix = f"{number}. " if kind == "ol" else "- "
            else:
                self.item_prefix = "- "
        elif tag == "blockquote":
            self._block()
            self.quote += 1
        elif tag == "pre":
            self._block()
            self.pre += 1
            self.line.append("```\n")
        elif tag == "hr":
            self._block()
            self.blocks.append(("---", False))
        elif tag in ("td", "th") and self.line and not "".join(self.line).endswith(" "):
            self.line.append(" · ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            return  # <iframe/>: nothing inside to skip
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag in _BLOCKS or tag == "li":
            self._block()
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._block()
            self.heading = 0
        elif tag in _EMPHASIS and not self.pre:
            self._close_emphasis(_EMPHASIS[tag])
        elif tag == "a" and self.links:
            start, href = self.links.pop()
            if href:
                inner = "".join(self.line[start + 1 :]).strip()
                del self.line[start:]
                self.line.append(f"[{inner}]({href})" if inner else f"<{href}>")
        elif tag in ("ul", "ol"):
            self._block()
            if self.lists:
                self.lists.pop()
            if not self.lists:
                self.blocks.append(("", False))
        elif tag == "blockquote":
            self._block()
            self.quote = max(0, self.quote - 1)
        elif tag == "pre" and self.pre:
            if not "".join(self.line).endswith("\n"):
                self.line.append("\n")
            self.line.append("```")
            self._block()
            self.pre -= 1

    def _close_emphasis(self, marker: str) -> None:
        # CommonMark ignores "**bold **": move trailing spaces outside the marker.
        trail = ""
        while self.line and not self.line[-1].strip() and self.line[-1] != "\n":
            trail = self.line.pop() + trail
        if self.line:
            stripped = self.line[-1].rstrip(" ")
            trail = self.line[-1][len(stripped) :] + trail
            self.line[-1] = stripped
        if self.line and self.line[-1] == marker:
            self.line.pop()  # empty emphasis
        else:
            self.line.append(marker)
        if trail:
            self.line.append(trail)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            self.line.append(data.replace("```", "`\u200b``"))
            return
        text = re.sub(r"\s+", " ", data)
        if self.just_opened and self.line and text.startswith(" "):
            marker = self.line.pop()
            self.line += [" ", marker]
            text = text.lstrip()
        if text:
            self.just_opened = False
        self.line.append(_escape(text))


def _escape(text: str) -> str:
    return _ESCAPE.sub(r"\\\1", text)


def _escape_line_start(line: str) -> str:
    """Stop a paragraph line from reading as a heading, list item or setext underline."""
    m = _LINE_START.match(line)
    if not m:
        return line
    token = m.group(1)
    if token[0].isdigit():
        return token[:-1] + "\\" + token[-1] + line[len(token) :]
    return "\\" + line
