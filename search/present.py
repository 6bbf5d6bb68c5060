"""Showing results: plain text for the terminal, and the `--json` documents (which the server's API returns too)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.build import BuildReport
    from search.retrieve import Hit, Located, Result

#: How many skipped timestamps a build lists by name before it only counts them.
LIST_DROPPED = 5
#: Control characters (C0 but tab and newline, DEL, C1). Note text printed as it is could drive the terminal: an
#: escape sequence in a title can retitle the window, clear the screen or, in some terminals, set the clipboard.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text from notes made safe to print: each control character becomes U+FFFD."""
    return _CONTROL.sub("\ufffd", text)


def emphasis(tty: bool) -> Callable[[str], str]:
    """Bold in a terminal, ``**markdown**`` when piped (so the emphasis survives in files)."""
    if tty:
        return lambda s: f"\x1b[1m{s}\x1b[0m"
    return lambda s: f"**{s}**"


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


def ask_text(results: list[Result], tty: bool) -> str:
    if not results:
        return "No passages found."
    from search.retrieve import ANSWER_THRESHOLD, found

    em = emphasis(tty)
    best = results[0].hit
    if found(results):
        lines = [printable(f"Answer: {best.sentence} {moment(best)}"), ""]
    else:
        lines = [
            f"No good answer: nothing in the notes answers this closely (best score {best.score:.2f}, below "
            f"{ANSWER_THRESHOLD:.2f}). The closest passages:",
            "",
        ]
    for res in results:
        hit = res.hit
        parts = (printable(hit.before), em(printable(hit.sentence)), printable(hit.after))
        snippet = " ".join(p for p in parts if p)
        lines += [
            printable(f"{hit.rank}. {source(hit)}  ({hit.score:.2f})"),
            printable(f"   {moment(hit)}"),
            f"   {snippet}",
            printable(f"   {hit.note}:{hit.line}"),
        ]
        for other in res.moments:
            lines.append(printable(f"   also {moment(other)}  {_short(other.sentence)}"))
        lines.append("")
    return "\n".join(lines).rstrip()


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def locate_text(result: Located, threshold: float) -> str:
    hit = result.hit
    if not result.found or hit is None:
        best = f" (best match {result.confidence:.2f}, below {threshold:.2f})" if hit else ""
        return f"Not found{best}: no sentence in the notes says this closely enough."
    return printable(
        "\n".join(
            [
                f"“{hit.sentence}”",
                f"{moment(hit)}",
                f"{source(hit)}",
                f"{hit.note}:{hit.line}  confidence {result.confidence:.2f}",
            ]
        )
    )


def ask_json(
    question: str, k: int, channel: str | None, video: str | None, results: list[Result]
) -> dict[str, Any]:
    """The `ask --json` document (and `GET /api/ask`'s). ``answer`` is the best result when it clears the
    threshold (``found``), else null; the closest passages are listed either way."""
    from search.language import HINT, mostly_not_english
    from search.retrieve import ANSWER_THRESHOLD, found

    good = found(results)
    return {
        "question": question,
        "k": k,
        "channel": channel,
        "video": video,
        "found": good,
        "threshold": ANSWER_THRESHOLD,
        "hint": HINT if mostly_not_english(question) else None,
        "answer": results[0].hit.to_json() if good else None,
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
            f"model      {info['model']} ({info['dimension']} dimensions, chunks of {info['chunk_tokens']} tokens)",
            f"built      {info['built_at']}",
            f"size       {size:.1f} MB on disk",
        ]
    )
    return printable(text)


def build_summary(report: BuildReport) -> list[str]:
    """Warnings (one line each) and the summary line, for stderr."""
    lines = [printable(f"warning: skipped {err}") for err in report.skipped]
    lines += [printable(f"warning: {line}") for line in report.clock_repairs]
    for line in report.dropped_timestamps[:LIST_DROPPED]:
        lines.append(printable(f"warning: timestamp ignored: {line}"))
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
