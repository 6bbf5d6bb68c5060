"""The reliability drills (scripts/drills.py) with small counts, the security review, and implausible timestamps
end to end. Real CLI processes on real files, no mocks, no timing assertions (a drill's per-call timeouts only
stop a hang)."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO
from search.errors import NoteError
from search.notes import read_note

sys.path.insert(0, str(REPO / "scripts"))
import drills

#: A fuzzed note taking longer than this is reported as a hang (the drill script itself uses NOTE_SECONDS).
HANG_SECONDS = 120.0


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> drills.Workspace:
    """A drill workspace: the two note sets, and the model exported once by a real first build."""
    return drills.Workspace(tmp_path_factory.mktemp("drills"))


def passed(drill: drills.Drill) -> None:
    if drill.not_done is not None:
        pytest.skip(drill.not_done)
    assert drill.runs > 0 and not drill.failures, drill.what_failed()


# --- the drills ----------------------------------------------------------------------------------------------


def test_kill_9_of_a_build_leaves_a_working_index_and_the_next_build_cleans_up(ws: drills.Workspace) -> None:
    passed(drills.drill_kill(ws, runs=3, seed=1))


def test_two_builds_at_once_one_builds_and_the_other_names_the_lock_holder(ws: drills.Workspace) -> None:
    passed(drills.drill_two_builds(ws, runs=2, seed=1))


def test_cli_questions_while_builds_swap_the_index_come_whole_from_one_build(ws: drills.Workspace) -> None:
    passed(drills.drill_questions(ws, questions=24))


def test_server_questions_while_builds_swap_the_index_come_whole_from_one_build(ws: drills.Workspace) -> None:
    passed(drills.drill_server(ws, questions=60))


@pytest.mark.parametrize(("target", "kind"), drills.QUICK_DAMAGE)
def test_a_damaged_index_fails_in_one_line_naming_the_fix_which_repairs_it(
    ws: drills.Workspace, target: str, kind: str
) -> None:
    passed(drills.drill_damage(ws, cases=[(target, kind)]))


def test_a_full_disk_fails_the_build_clearly_and_keeps_the_old_index(ws: drills.Workspace) -> None:
    passed(drills.drill_disk_full(ws, fractions=(0.0, 0.9), export=False))


def test_a_write_past_the_file_size_limit_fails_the_build_clearly(ws: drills.Workspace) -> None:
    passed(drills.drill_file_size_limit(ws, files=1))


def test_unreadable_and_odd_files_are_reported_by_name_and_the_rest_indexed(ws: drills.Workspace) -> None:
    passed(drills.drill_bad_files(ws, replace_runs=1))


def test_fuzzed_notes_are_indexed_or_skipped_with_a_reason(ws: drills.Workspace) -> None:
    passed(drills.drill_fuzz(ws, notes=20, seed=2, worst_chars=20_000, note_seconds=HANG_SECONDS))


# --- security review -----------------------------------------------------------------------------------------

SEARCH = REPO / "search"
#: Modules that unpickle (run code from data) or run other programs.
FORBIDDEN_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
FORBIDDEN_MODULES |= {"subprocess", "pty", "commands"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__", "execfile"}
#: module.function calls that run a shell or a program, or load with pickle/arbitrary YAML tags.
FORBIDDEN_CALLS = {
    ("os", name) for name in ("system", "popen", "execv", "execve", "execvp", "execl", "spawnv", "spawnl")
} | {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("torch", "load")}


def python_sources() -> list[Path]:
    return sorted(SEARCH.rglob("*.py"))


def test_no_pickle_eval_exec_or_shell_anywhere_in_search() -> None:
    found = []
    for path in python_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [
                    f"{where} imports {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in FORBIDDEN_MODULES
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{where} imports from {node.module}")
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                    found.append(f"{where} calls {func.id}()")
                if (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and (func.value.id, func.attr) in FORBIDDEN_CALLS
                ):
                    found.append(f"{where} calls {func.value.id}.{func.attr}()")
                for kw in node.keywords:
                    constant = isinstance(kw.value, ast.Constant) and kw.value.value is True
                    if kw.arg in ("shell", "allow_pickle") and constant:
                        found.append(f"{where} passes {kw.arg}=True")
    assert found == []


def test_the_search_page_never_parses_note_text_as_html() -> None:
    scripts = sorted((SEARCH / "static").glob("*.js"))
    if not scripts:
        pytest.skip("there is no search page")
    sinks = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(")
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in scripts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sinks.search(line) and not line.strip().startswith("//")
    ]
    assert found == []


def test_yaml_tags_in_frontmatter_construct_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    note = tmp_path / "note.md"
    note.write_text(
        f"---\ntitle: !!python/object/apply:os.system ['touch {marker}']\n---\n\nText [00:01].\n",
        encoding="utf-8",
    )
    with pytest.raises(NoteError, match="invalid YAML frontmatter"):
        read_note(note, tmp_path)
    assert not marker.exists()


EVIL_NOTE = """---
title: "Evil \\e]0;pwned\\a title \\e[2J"
videoId: abcdefghijk
---

# Heading \x1b[31mred\x1b[0m

The script <script>alert(1)</script> runs and an image <img src=x onerror="alert(2)"> loads [00:01:00].
Escapes \x1b[2J clear the screen, \x07 rings a bell and &lt;script&gt;alert(3)&lt;/script&gt; shows [00:02:00].
A link <a href="javascript:alert(4)">click here</a> and a form <form action="x"><input></form> [00:03:00].
"""
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_note_html_and_control_characters_are_printed_as_inert_text(ws: drills.Workspace) -> None:
    notes = ws.path("evil") / "notes"
    notes.mkdir(parents=True)
    (notes / "evil.md").write_text(EVIL_NOTE, encoding="utf-8")
    index = ws.index("evil")
    assert drills.cli(["build", str(notes)], index).code == 0
    question = "script alert bell clear the screen"
    for args in (["ask", question], ["locate", "Escapes clear the screen rings a bell"], ["info"]):
        run = drills.cli(args, index)
        assert run.code == 0, run.err
        assert not CONTROL.search(run.out), f"{args[0]} prints a control character: {run.out!r}"
    text = drills.cli(["ask", question], index).out
    assert "alert(1)" in text and "<script>alert(3)</script>" in text  # shown as text, never run
    data = drills.cli(["ask", question, "--json"], index).data()
    sentences = [r["sentence"] for r in data["results"]]
    assert any("<script>alert(3)</script>" in s for s in sentences), sentences


# --- implausible timestamps, end to end ----------------------------------------------------------------------

IMPLAUSIBLE = """---
title: Implausible times
videoId: abcdefghijk
---

# Talk

The speaker opens with the history of the lighthouse project <a class="yt-timestamp" data-t="00:10:15">[00:10:15]</a>.
Later the team rebuilt the lamp mechanism from scratch <a class="yt-timestamp" data-t="00:45:12">[00:45:12]</a>.

The closing story is about the keeper who stayed through the storm [56:04:00].

A sentence with an impossible second count sits here [00:10:75].

The label of this anchor disagrees with its data attribute <a class="yt-timestamp" data-t="00:02:10">[00:02:01]</a>.
"""


def test_implausible_timestamps_through_build_and_locate(ws: drills.Workspace) -> None:
    notes = ws.path("implausible") / "notes"
    notes.mkdir(parents=True)
    note = notes / "talk.md"
    note.write_text(IMPLAUSIBLE, encoding="utf-8")
    index = ws.index("implausible")
    build = drills.cli(["build", str(notes)], index)
    assert build.code == 0, build.err
    line = (
        IMPLAUSIBLE.splitlines().index("A sentence with an impossible second count sits here [00:10:75].") + 1
    )
    # Seconds above 59: dropped, with a warning naming the file and line.
    assert f"warning: timestamp ignored: {note}:{line}: [00:10:75]" in build.err, build.err
    assert "above 59" in build.err

    def seconds(claim: str) -> int:
        found = drills.cli(["locate", claim, "--json"], index).data()
        assert found["found"], found
        return int(found["result"]["seconds"])

    # 56:04:00 in a talk whose real times stay under an hour: 56 min 4 s.
    assert seconds("The closing story is about the keeper who stayed through the storm") == 56 * 60 + 4
    # A data-t that disagrees with its label: data-t is used.
    assert seconds("The label of this anchor disagrees with its data attribute") == 2 * 60 + 10
    assert seconds("Later the team rebuilt the lamp mechanism from scratch") == 45 * 60 + 12
    report = json.loads(drills.cli(["info", "--json"], index).out)
    assert report["notes"] == 1
