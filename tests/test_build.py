"""Building: bad notes are skipped by name, the rest indexed; a failed build never touches the old index."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLE_NOTES, run_cli
from search import store

GOOD = next(SAMPLE_NOTES.glob("stanford/*.md"))


def bad_notes(folder: Path) -> dict[str, str]:
    """Write one note of each bad kind; return file name -> words its warning must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "yaml.md").write_text(
        '---\ntitle: "unclosed\nvideoId: aircAruvnKk\n---\n\nText.\n', encoding="utf-8"
    )
    (folder / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (folder / "latin1.md").write_bytes("---\ntitle: Café\n---\n\nCafé au lait.\n".encode("latin-1"))
    (folder / "empty.md").write_bytes(b"")
    (folder / "huge.md").write_text("---\ntitle: Huge\n---\n\n" + "word " * (1024 * 1024), encoding="utf-8")
    return {
        "yaml.md": "YAML",
        "binary.md": "binary",
        "latin1.md": "UTF-8",
        "empty.md": "empty",
        "huge.md": "limit",
    }


def fingerprint(index: Path) -> dict[str, str]:
    return {
        str(p.relative_to(index)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(index.rglob("*"))
        if p.is_file() and p.name != store.LOCK
    }


def test_bad_notes_are_skipped_by_name_and_the_rest_indexed(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    expected = bad_notes(notes)
    shutil.copy(GOOD, notes / GOOD.name)
    index = tmp_path / "index"
    proc = run_cli("build", str(notes), index=index)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == len(expected)
    for name, words in expected.items():
        (line,) = [w for w in warnings if f"{notes / name}" in w]
        assert words in line, line
    assert re.search(rf"{re.escape(str(notes / 'yaml.md'))}:\d+: invalid YAML", " ".join(warnings))
    assert "Indexed 1 notes (5 skipped)" in proc.stderr
    info = json.loads(run_cli("info", "--json", index=index, check=True).stdout)
    assert info["notes"] == 1


def test_a_build_with_every_note_bad_keeps_the_old_index(tmp_path: Path) -> None:
    index = tmp_path / "index"
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(GOOD, good / GOOD.name)
    run_cli("build", str(good), index=index, check=True)
    before = fingerprint(index)

    bad = tmp_path / "bad"
    bad_notes(bad)
    proc = run_cli("build", str(bad), index=index)
    assert proc.returncode == 1
    assert "could be indexed" in proc.stderr and "unchanged" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fingerprint(index) == before
    assert run_cli("ask", "dropping out", "--json", index=index, check=True).returncode == 0


def test_rebuild_replaces_the_index_and_keeps_one_previous_generation(tmp_path: Path) -> None:
    index = tmp_path / "index"
    notes = tmp_path / "notes"
    notes.mkdir()
    shutil.copy(GOOD, notes / GOOD.name)
    for _ in range(3):
        run_cli("build", str(notes), index=index, check=True)
    gens = sorted(p.name for p in index.glob("gen-*"))
    current = (index / store.CURRENT).read_text().strip()
    assert current in gens and len(gens) == 2
    assert not list(index.glob(".tmp-*"))


def test_a_second_build_exits_naming_the_lock_holder(tmp_path: Path) -> None:
    index = tmp_path / "index"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from search import store\n"
            "with store.build_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n",
            str(index),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = run_cli("build", str(SAMPLE_NOTES), index=index)
        assert proc.returncode == 1
        assert f"another build (pid {holder.pid})" in proc.stderr
    finally:
        holder.kill()
        holder.wait()


def test_missing_notes_folder_is_a_user_error(tmp_path: Path) -> None:
    proc = run_cli("build", str(tmp_path / "nowhere"), index=tmp_path / "index")
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("build", str(empty), index=tmp_path / "index")
    assert proc.returncode == 1 and "no .md notes" in proc.stderr
