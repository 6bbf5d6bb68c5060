"""Turning note markup into the plain text that is embedded and shown.

Anchor HTML, ``<br/>`` and other tags, markdown emphasis and links are removed; wikilinks become the text they
show (``[[slug | Shown]]`` -> ``Shown``, ``[[slug]]`` -> ``slug``). Mojibake is repaired with ftfy.
"""

from __future__ import annotations

import html
import re

#: A timestamp anchor: an ``<a>`` element with a ``data-t`` attribute (whatever its class is spelled). Neither
#: its attributes nor its label run past the next ``<a``: unclosed anchors in a long line would otherwise each
#: be matched against the rest of the line (quadratic time; a 50 KB line took minutes).
ANCHOR = re.compile(
    r"<a\b(?=[^<>]*\bdata-t\b)(?P<attrs>[^<>]*+)>(?P<label>(?:(?!<a\b).)*?)</a\s*>", re.IGNORECASE | re.DOTALL
)
#: An anchor's ``data-t`` attribute; its value is the first group.
DATA_T = re.compile(r"""\bdata-t\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
# `|` may be escaped as `\|` inside tables. Greedy groups, stripped by wikilink_text (lazy ones with `\s*` after
# them take quadratic time on a long run of spaces).
WIKILINK = re.compile(r"!?\[\[([^\[\]|\\]*)(?:\\?\|([^\[\]]*))?\]\]")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()\s]*(?:\s+\"[^\"]*\")?\)")
# Emphasis does not run past the next marker of its kind: `*a *a *a …` would otherwise try every later `*` as
# the closing one (quadratic time).
_EMPHASIS = re.compile(
    r"(\*\*|__)(?=\S)((?:(?!\1).)+?)(?<=\S)\1|(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])"
)
_CODE = re.compile(r"`+([^`]*)`+")
_CALLOUT = re.compile(r"^\s*\[!([A-Za-z -]+)\][+-]?\s*")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")


def remove_anchors(text: str) -> str:
    """Drop timestamp anchors entirely (their label is a time, not prose)."""
    return ANCHOR.sub(" ", text)


def wikilink_text(match: re.Match[str]) -> str:
    target, shown = match.group(1).strip(), (match.group(2) or "").strip()
    return shown or target


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
