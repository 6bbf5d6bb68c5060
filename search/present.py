"""Showing results: plain text for the terminal, and the `--json` documents (which the server's API returns too)."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from search import parts
from search.markup import DATA_T

if TYPE_CHECKING:
    from search.build import BuildReport
    from search.retrieve import Hit, Located, Result

#: How many skipped timestamps a build lists by name before it only counts them.
LIST_DROPPED = 5
#: Control characters (C0 but tab and newline, DEL, C1). Note text printed as it is could drive the terminal: an
#: escape sequence in a title can retitle the window, clear the screen or, in some terminals, set the clipboard.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


#: A formula, kept whole when lines are wrapped: display ``$$…$$`` (the note's lines already joined into one) and
#: inline ``$…$`` that neither starts nor ends with a space (so "$5 and $10" is not one).
_MATH = re.compile(r"\$\$.+?\$\$|\$(?=\S)[^$\n]{1,200}?(?<=\S)\$")
#: Stand-ins while wrapping, never in printable text (control characters are replaced): a space that must not break,
#: and the start and end of bold.
_GLUE, _BOLD, _END = "\x00", "\x01", "\x02"
#: An anchor as notes write it (`<a class="yt-timestamp" data-t="00:01:50">[00:01:50]</a>`), with the brackets a
#: warning may have put around it.
_ANCHOR = re.compile(r"\[?<a\b([^>]*)>(.*?)</a>\]?", re.I | re.S)


def printable(text: str) -> str:
    """Text from notes made safe to print: each control character becomes U+FFFD."""
    return _CONTROL.sub("\ufffd", text)


def no_color() -> bool:
    """Whether NO_COLOR (https://no-color.org) asks for no styling: set to anything but empty."""
    return bool(os.environ.get("NO_COLOR"))


@dataclass(frozen=True)
class Screen:
    """Where text goes: ``width`` columns to wrap to (None: one line per item, as when piped to a file or a
    program), and whether bold may be used (a terminal, without NO_COLOR)."""

    width: int | None = None
    bold: bool = False


def screen(stream: TextIO) -> Screen:
    """A terminal's width and bold (unless NO_COLOR); plain unwrapped lines when the stream is not a terminal."""
    if not stream.isatty():
        return Screen()
    return Screen(shutil.get_terminal_size().columns, not no_color())


def emphasis(bold: bool) -> Callable[[str], str]:
    """Bold in a terminal, ``**markdown**`` when piped or with NO_COLOR (so the emphasis survives in files)."""
    if bold:
        return lambda s: f"{_BOLD}{s}{_END}"
    return lambda s: f"**{s}**"


def wrap(text: str, width: int | None, first: str = "", rest: str | None = None) -> str:
    """One line of output after ``first``, wrapped to ``width`` columns (None: left whole) with ``rest`` (default
    ``first``) before each further line. Never breaks a link, a word or a formula. Bold markers from `emphasis`
    become the terminal's bold here."""
    indent = first if rest is None else rest
    if width is None:
        out = first + text
    else:
        glued = _MATH.sub(lambda m: m.group(0).replace(" ", _GLUE), text)
        lines = textwrap.wrap(
            glued,
            width=max(width, 20),
            initial_indent=first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        out = "\n".join(lines).replace(_GLUE, " ")
    return out.replace(_BOLD, "\x1b[1m").replace(_END, "\x1b[0m")


def readable(text: str) -> str:
    """A warning's text with each timestamp anchor as notes write it shown as ``[00:01:50]`` (its data-t, else its
    label), never as raw HTML."""

    def stamp(m: re.Match[str]) -> str:
        data_t = DATA_T.search(m.group(1))
        value = data_t.group(1).strip() if data_t else ""
        return f"[{value or re.sub(r'<[^>]*>', '', m.group(2)).strip().strip('[]').strip()}]"

    return _ANCHOR.sub(stamp, text)


def moment(hit: Hit) -> str:
    """``[HH:MM:SS] link`` (or what is missing instead)."""
    stamp = f"[{hit.timestamp}]" if hit.timestamp else "[no timestamp]"
    if not hit.timed and hit.timestamp:
        stamp += " (nearest)"
    return f"{stamp} {hit.url}" if hit.url else f"{stamp} (the note has no valid videoId, so no link)"


def source(hit: Hit) -> str:
    where = " › ".join(hit.heading)
    parts = [hit.title, hit.channel or "unknown channel"]
    return " · ".join(parts) + (f" › {where}" if where else "")


def ask_text(results: list[Result], out: Screen) -> str:
    """The answer line and the results, wrapped to the screen (see `Screen`)."""
    if not results:
        return "No passages found."
    from search.retrieve import ANSWER_THRESHOLD, found

    em = emphasis(out.bold)
    best = results[0].hit
    if found(results):
        lines = [
            wrap(printable(f"Answer: {_answer_sentence(best)} {moment(best)}"), out.width, "", " " * 8),
            "",
        ]
    else:
        lines = [
            wrap(
                f"No good answer: nothing in the notes answers this closely (best score {best.score:.2f}, below "
                f"{ANSWER_THRESHOLD:.2f}). The closest passages:",
                out.width,
            ),
            "",
        ]
    for res in results:
        hit = res.hit
        parts = (printable(hit.before), em(printable(hit.sentence)), printable(hit.after))
        snippet = " ".join(p for p in parts if p)
        lines += [
            wrap(printable(f"{hit.rank}. {source(hit)}  ({hit.score:.2f})"), out.width, "", "   "),
            wrap(printable(moment(hit)), out.width, "   "),
            wrap(snippet, out.width, "   "),
            wrap(printable(f"{hit.note}:{hit.line}"), out.width, "   "),
        ]
        for other in res.moments:
            # A moment from another note about the same video says which note it is in.
            where = f"  ({other.note}:{other.line})" if other.note != hit.note else ""
            text = printable(f"also {moment(other)}  {_short(other.sentence)}{where}")
            lines.append(wrap(text, out.width, "   ", " " * 8))
        lines.append("")
    return "\n".join(lines).rstrip()


#: Characters of what a lead-in sentence introduces shown after it on the answer line.
LEAD_IN_CHARS = 160


def _answer_sentence(hit: Hit) -> str:
    """The best sentence as the answer line shows it: one that leads into what follows ("Three rules of thumb:")
    answers nothing alone, so the start of what follows it in the passage comes with it."""
    if hit.sentence.rstrip().endswith(":") and hit.after:
        return f"{hit.sentence} {_short(hit.after, LEAD_IN_CHARS)}"
    return hit.sentence


def _short(text: str, width: int = 90) -> str:
    """About ``width`` characters of a sentence, cut at a space outside any formula."""
    if len(text) <= width:
        return text
    glued = _MATH.sub(lambda m: m.group(0).replace(" ", _GLUE), text)
    cut = glued[: width - 1].rsplit(" ", 1)[0] if " " in glued[: width - 1] else glued[: width - 1]
    return cut.replace(_GLUE, " ") + "…"


def locate_text(result: Located, threshold: float, out: Screen | None = None) -> str:
    width = out.width if out else None
    hit = result.hit
    if not result.found or hit is None:
        best = f" (best match {result.confidence:.2f}, below {threshold:.2f})" if hit else ""
        return wrap(f"Not found{best}: no sentence in the notes says this closely enough.", width)
    return "\n".join(
        [
            wrap(printable(f"“{hit.sentence}”"), width, "", " "),
            wrap(printable(moment(hit)), width),
            wrap(printable(source(hit)), width),
            wrap(printable(f"{hit.note}:{hit.line}  confidence {result.confidence:.2f}"), width),
        ]
    )


def ask_json(
    question: str,
    k: int,
    channel: str | None,
    video: str | None,
    results: list[Result],
    bundled_model: bool = True,
) -> dict[str, Any]:
    """The `ask --json` document (and `GET /api/ask`'s). ``answer`` is the best result when it clears the
    threshold (``found``), else null; the closest passages are listed either way. ``bundled_model``: the index
    was made with the bundled (English) model, so a question mostly not in English gets the hint."""
    from search.language import hint
    from search.retrieve import ANSWER_THRESHOLD, found

    good = found(results)
    return {
        "question": question,
        "k": k,
        "channel": channel,
        "video": video,
        "found": good,
        "threshold": ANSWER_THRESHOLD,
        "hint": hint(question, bundled_model),
        "answer": results[0].hit.to_json() if good else None,
        "answer_text": _answer_sentence(results[0].hit) if good else None,
        "results": [r.to_json() for r in results],
    }


def locate_json(claim: str, result: Located, threshold: float) -> dict[str, Any]:
    """The `locate --json` document (and `GET /api/locate`'s)."""
    return {
        "claim": claim,
        "found": result.found,
        "confidence": round(result.confidence, 4),
        "threshold": threshold,
        "result": result.hit.to_json() if result.hit else None,
    }


def info_text(info: dict[str, Any]) -> str:
    size = info["size_bytes"] / 1e6
    text = "\n".join(
        [
            f"index      {info['index']} ({info['generation']})",
            f"notes      {info['notes']} from {info['notes_dir']}",
            f"chunks     {info['chunks']} ({info['segments']} timestamp segments)",
            f"model      {info['model']} ({info['dimension']} dimensions, chunks of {info['chunk_tokens']} tokens)"
            + ("" if info.get("encoder", "onnx") == "onnx" else f", encoded with {info['encoder']}"),
            f"built      {info['built_at']}",
            f"size       {size:.1f} MB on disk",
            f"search     {_search_line(info.get('vectors') or {})}",
        ]
        + (
            [
                f"extended   by rebuilds since the last full write of {info['tail']['chunks']} passages (written "
                f"in full again once {100 * parts.TAIL_SHARE:g} % of them have changed)"
            ]
            if info.get("tail")
            else []
        )
    )
    return printable(text)


def _search_line(vectors: dict[str, Any]) -> str:
    """How the passages' and the segments' vectors are searched, e.g. "exact" or "segments approximately (IVF,
    64 of 3465 lists probed), passages exactly"."""
    ways = []
    for name, shown in (("chunks", "passages"), ("segments", "segments")):
        record = vectors.get(name) or {}
        if record.get("type") == "ivf":
            probed = min(record["probe"], record["lists"])  # faiss probes at most every list
            ways.append(f"{shown} approximately (IVF, {probed} of {record['lists']} lists probed)")
        else:
            ways.append(f"{shown} exactly")
    if all(w.endswith("exactly") for w in ways):
        return "exact (every vector compared)"
    return ", ".join(ways)


def build_summary(report: BuildReport) -> list[str]:
    """Warnings (one line each) and the summary line, for stderr."""
    lines = [printable(readable(f"warning: skipped {err}")) for err in report.skipped]
    lines += [printable(readable(f"warning: {line}")) for line in report.clock_repairs]
    for line in report.dropped_timestamps[:LIST_DROPPED]:
        lines.append(printable(readable(f"warning: timestamp ignored: {line}")))
    if len(report.dropped_timestamps) > LIST_DROPPED:
        lines.append(
            f"warning: {len(report.dropped_timestamps) - LIST_DROPPED} more timestamps ignored "
            "(`ytnotes build --verbose` lists them all)"
        )
    if report.notice:
        lines.insert(0, f"note: {report.notice}")
    reasons = f" ({len(report.skipped)} skipped)" if report.skipped else ""
    if report.up_to_date:
        lines.append(
            f"Index is up to date: {report.notes} notes{reasons}, {report.chunks} chunks "
            f"(checked in {report.seconds:.1f} s)."
        )
        return lines
    work = ""
    if report.reused_notes or report.reused_chunks or report.removed_notes:
        work = (
            f" ({report.changed_notes} notes read, {report.reused_notes} unchanged, {report.removed_notes} "
            f"removed; {report.embedded_chunks} chunks embedded, {report.reused_chunks} reused)"
        )
    lines.append(
        f"Indexed {report.notes} notes{reasons}, {report.chunks} chunks, {report.segments} segments "
        f"in {report.seconds:.1f} s{work}."
    )
    return lines
