"""Turning note markup into the plain text that is embedded and shown.

Anchor HTML, ``<br/>`` and other tags, markdown emphasis and links are removed; wikilinks become the text they
show (``[[slug | Shown]]`` -> ``Shown``, ``[[slug]]`` -> ``slug``). Mojibake is repaired with ftfy.
"""

from __future__ import annotations

import html
import re

#: A timestamp anchor: an ``<a>`` element with a ``data-t`` attribute (whatever its class is spelled).
ANCHOR = re.compile(r"<a\b(?P<attrs>[^>]*\bdata-t\b[^>]*)>(?P<label>.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
# `|` may be escaped as `\|` inside tables.
WIKILINK = re.compile(r"!?\[\[([^\[\]|\\]*?)(?:\s*\\?\|\s*([^\[\]]*?))?\s*\]\]")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()\s]*(?:\s+\"[^\"]*\")?\)")
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_CODE = re.compile(r"`+([^`]*)`+")
_CALLOUT = re.compile(r"^\s*\[!([A-Za-z -]+)\][+-]?\s*")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")


def remove_anchors(text: str) -> str:
    """Drop timestamp anchors entirely (their label is a time, not prose)."""
    return ANCHOR.sub(" ", text)


def wikilink_text(match: re.Match[str]) -> str:
    target, shown = match.group(1), match.group(2)
    return (shown or target).strip()


def clean(text: str) -> str:
    """Plain prose from one piece of note markup, on one line."""
    text = _CALLOUT.sub(lambda m: m.group(1).strip().title() + ": ", text)
    text = remove_anchors(text)
    text = WIKILINK.sub(wikilink_text, text)
    text = _IMAGE_OR_LINK.sub(lambda m: m.group(1), text)
    text = _TAG.sub(" ", text)
    text = _CODE.sub(lambda m: m.group(1), text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    text = html.unescape(text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 read as Windows-1252 (``â€™`` -> ``’``) and similar, leaving correct text alone."""
    import ftfy

    return str(ftfy.fix_encoding(text))
