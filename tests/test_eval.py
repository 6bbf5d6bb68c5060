"""Answer quality on a fixed slice of the evaluation set, scored by the evaluation harness (scripts/eval.py).

Every 8th question of scripts/eval/questions.jsonl (ask and locate kinds alike), over an index built with the real
model from only the notes those questions name. The floors sit a little under what was measured when they were set
(the run is deterministic: same notes, same model, same questions); a change that moves answers for the worse
trips them. The full set and its dev/test split: `scripts/eval.py scripts/eval/questions.jsonl --compare`.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from search import rank
from search.build import build_index

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
NOTES = SHARED / "corpus" / "notes"
QUESTIONS = REPO / "scripts" / "eval" / "questions.jsonl"
EVERY = 8

#: Measured on this slice (59 questions from 58 notes: 44 ask, 15 locate) when the floors were set: hybrid ask
#: hit@1 0.773 (34/44), hit@5 0.955 (42/44), MRR@10 0.843; locate hit@1 0.933 (14/15). Each floor allows about one
#: question less (CPUs may round a cosine differently). The best single method, dense-segments: ask MRR@10 0.747.
#: Since the word vectors are product-quantised (issue 15): ask hit@1 0.727 (32/44), hit@5 0.955, MRR@10 0.830,
#: locate 0.933, dense-segments 0.737 (two top answers of this slice moved to second place; over the whole set's
#: 254 dev questions, one: see the README's Index size), and the ask floors moved down with them by the same rule.
FLOORS = {"ask": {"hit@1": 0.70, "hit@5": 0.93, "MRR@10": 0.81}, "locate": {"hit@1": 0.86}}


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ytnotes_eval_harness", REPO / "scripts" / "eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not NOTES.is_dir():
        pytest.skip(f"the shared evaluation corpus is not beside the repo ({NOTES} is missing)")
    ev = _harness()
    questions = ev.load(QUESTIONS)[::EVERY]
    tmp = tmp_path_factory.mktemp("eval-slice")
    for rel in sorted({q.note for q in questions}):
        target = tmp / "notes" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NOTES / rel, target)
    build_index(tmp / "notes", tmp / "index")
    idx = ev.open_for_eval(tmp / "index")

    def metrics(weights: rank.Weights) -> dict[str, dict[str, float]]:
        rows = ev.summarise(questions, ev.score(idx, questions, weights), False)
        return {
            family: dict(zip(ev.COLUMNS, m, strict=True)) for _, split, family, _, m in rows if split == "all"
        }

    asks = [q for q in questions if not q.is_locate][:10]
    flagged = {
        t: [ev.score(idx, asks, rank.HYBRID, threshold=t)[q.q][-1] for q in asks] for t in (0.0, 0.34, 1.01)
    }
    return {
        "questions": questions,
        "flagged": flagged,
        "hybrid": metrics(rank.HYBRID),
        "single": {
            name: metrics(w)
            for name, w in (("dense", rank.DENSE), ("segments", rank.SEGMENTS), ("lexical", rank.LEXICAL))
        },
    }


def test_slice_covers_both_families(slice_run: dict[str, Any]) -> None:
    kinds = [q.kind for q in slice_run["questions"]]
    assert len(kinds) >= 40
    assert sum(k.startswith("locate") for k in kinds) >= 10 and sum(k.startswith("ask") for k in kinds) >= 30


@pytest.mark.parametrize("family", ["ask", "locate"])
def test_hybrid_meets_floors(slice_run: dict[str, Any], family: str) -> None:
    measured = slice_run["hybrid"][family]
    for metric, floor in FLOORS[family].items():
        assert measured[metric] >= floor, f"{family} {metric} {measured[metric]:.3f} < floor {floor}"


def test_the_flagged_column_follows_the_threshold_asked_for(slice_run: dict[str, Any]) -> None:
    """`scripts/eval.py --threshold X`: a question is flagged when its best score is below X (scores are 0-1)."""
    flagged = slice_run["flagged"]
    assert flagged[0.0] == [0.0] * 10 and flagged[1.01] == [1.0] * 10
    assert sum(flagged[0.34]) <= 1  # real questions: the default flags few


def test_hybrid_beats_every_single_method(slice_run: dict[str, Any]) -> None:
    hybrid = slice_run["hybrid"]["ask"]["MRR@10"]
    for name, single in slice_run["single"].items():
        assert hybrid > single["ask"]["MRR@10"], (
            f"{name} MRR@10 {single['ask']['MRR@10']:.3f} >= {hybrid:.3f}"
        )


def test_configurations_are_compared_question_by_question_with_a_sign_test() -> None:
    ev = _harness()
    assert ev.sign_test(0, 0) == 1.0 and ev.sign_test(5, 5) == 1.0
    assert ev.sign_test(0, 5) == pytest.approx(2 / 32)  # five of five one way: 1 in 16, either way
    assert ev.sign_test(3, 1) == pytest.approx(2 * 5 / 16)
    assert ev.sign_test(1, 18) < 0.001
    questions = [ev.Question(q=f"q{n}", video="v", t=[0], note="n", kind="ask", set="s") for n in range(4)]
    questions.append(ev.Question(q="nothing", video=None, t=[], note=None, kind="unrelated", set="u"))
    right, wrong = [1.0] * len(ev.COLUMNS), [0.0] * len(ev.COLUMNS)
    base = {"q0": right, "q1": right, "q2": wrong, "q3": wrong, "nothing": wrong}
    other = {"q0": right, "q1": wrong, "q2": right, "q3": right, "nothing": right}
    rows = {(qset, split): (n, counts) for qset, split, n, counts in ev.paired(questions, base, other)}
    # q2 and q3 won, q1 lost, q0 right in both; the unrelated input is no ask question.
    assert rows[("s", "all")] == (4, [(2, 1)] * len(ev.PAIRED))
    assert rows[("every set", "all")] == rows[("s", "all")]
    assert not any(qset == "u" for qset, _ in rows)
    assert "+2 -1 (1.00)" in ev.paired_table([("other", "s", "all", 4, [(2, 1), (2, 1)])], "hybrid")


def test_maxsim_scores_segment_words_and_heading_words() -> None:
    """Each question word takes its best cosine among the segment's words and the heading line's; averaged."""
    import numpy as np

    question = np.eye(3, dtype=np.float32)[:2]  # two question words, along axes 0 and 1
    words = np.asarray([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
    owners = np.asarray([0, 1, -1])  # segment 0's word, segment 1's word, a heading word
    assert rank.maxsim(question, words, owners, 2).tolist() == [1.0, 0.5]


def test_maxsim_of_several_passages_at_once_equals_each_on_its_own() -> None:
    """Passages with and without heading words, words out of segment order, a segment with no word of its own:
    scored together, each segment gets the score its passage gets alone, and the score MaxSim defines."""
    import numpy as np

    rng = np.random.default_rng(0)

    def unit(rows: np.ndarray) -> np.ndarray:
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    question = unit(rng.standard_normal((4, 8)))
    passages = [  # (owners of the passage's words, its segments)
        (np.asarray([-1, -1, 0, 0, 1, 2, 2]), 3),
        (np.asarray([1, 0, 1, 0]), 2),  # no heading words
        (np.asarray([-1, 0, 2]), 3),  # segment 1 has no word: only the heading counts for it
    ]
    vectors = [unit(rng.standard_normal((len(owners), 8))) for owners, _ in passages]
    # The definition, word by word: a segment's words and its passage's heading words.
    expected = [
        np.mean(
            [max(float(q @ w) for w, o in zip(v, owners, strict=True) if o in (seg, -1)) for q in question]
        )
        for v, (owners, n) in zip(vectors, passages, strict=True)
        for seg in range(n)
    ]
    alone = np.concatenate(
        [rank.maxsim(question, v, owners, n) for v, (owners, n) in zip(vectors, passages, strict=True)]
    )
    placed, seg_of_word, passage_of_word, passage_of_segment = 0, [], [], []
    for p, (owners, n) in enumerate(passages):
        seg_of_word.append(np.where(owners >= 0, owners + placed, -1))
        passage_of_word.append(np.full(len(owners), p))
        passage_of_segment.append(np.full(n, p))
        placed += n
    table = rank.maxsim_table(
        question,
        np.concatenate(vectors),
        np.concatenate(seg_of_word),
        np.concatenate(passage_of_word),
        np.concatenate(passage_of_segment),
    )
    assert table.shape == (
        len(question),
        len(alone),
    )  # a row for each question word, a column for each segment
    together = table.mean(axis=0)
    # Equal up to float32 rounding: BLAS sums a product in an order that depends on its shape (bit-equal on one
    # machine, 3e-8 apart on another).
    assert together == pytest.approx(alone, abs=1e-6)
    assert together == pytest.approx(expected, abs=1e-6)


def test_question_spans_keep_the_informative_words() -> None:
    text = "Why does the Zune freeze?"
    assert [text[a:b] for a, b in rank.question_spans(text)] == ["Zune", "freeze"]
    only_stopwords = "what is it"
    assert [only_stopwords[a:b] for a, b in rank.question_spans(only_stopwords)] == ["what", "is", "it"]


def test_a_segment_that_points_back_is_told_apart() -> None:
    assert rank.continues("This led to hiring a developer relations person very early on.")
    assert rank.continues('However, the more important question is: "How much more will they spend?"')
    assert not rank.continues("Thistle grows on the hills.")  # a word, not a pointer
    assert not rank.continues("Nvidia has always envisioned itself as a platform company.")


def test_the_moment_choice_only_reorders_segments_inside_their_passage() -> None:
    import numpy as np

    from search.retrieve import _within_passages

    scores = np.asarray([0.9, 0.5, 0.7, 0.8, 0.2])
    choice = np.asarray([0.1, 0.95, 0.3, 0.6, 0.9])  # the second segment of passage 0 is the moment
    passage = np.asarray([0, 0, 0, 1, 1])
    out = _within_passages(scores, choice, passage)
    assert out.tolist() == [0.5, 0.9, 0.7, 0.2, 0.8]
    for p in (0, 1):  # each passage keeps the scores it had, so passages rank as before
        assert sorted(out[passage == p]) == sorted(scores[passage == p])


def test_a_question_that_opens_with_a_premise_is_split_where_it_asks() -> None:
    premise = "since optical parts can't shrink below the light's wavelength"
    question = f"{premise}, which way does that push chipmakers?"
    assert question[: rank.premise_end(question)] == premise
    question = "Indeed found GPT-4 too slow; so what was wrong with the cheaper model they tried next?"
    assert question[: rank.premise_end(question)] == "Indeed found GPT-4 too slow"
    assert rank.premise_end("in OBS, what is the normal decibel level for a microphone?") == 6
    for said in ("Apple grew huge. What happened to Jobs?", "Apple grew huge - so what happened to Jobs?"):
        assert said[: rank.premise_end(said)] == "Apple grew huge"
    # A question that opens by asking has no premise: what follows its comma is a relative clause or a second ask.
    assert rank.premise_end("what did Nvidia build first, which surprised everyone?") is None
    assert rank.premise_end("how soon after joining, and how often, should a manager ship?") is None
    assert rank.premise_end("why can a soldered joint be torn apart by hand?") is None
    assert rank.premise_end("the Zune, the iPod and the rest") is None  # no asking after the comma
    assert rank.premise_end(", what now?") is None  # nothing before it


def test_a_premise_links_the_sentence_after_the_one_it_echoes(sample_index: Path) -> None:
    """The premise echoes the sentence before the answer (Apple grew to $2 billion, 00:06:15); the asked part is
    what happened next (he was fired, 00:06:30). Read with all the question's words, the echo wins."""
    from dataclasses import replace

    from search.retrieve import open_index

    question = "once Apple had grown from a garage into a two billion dollar company, what happened to Jobs?"
    idx = open_index(sample_index)
    try:
        (hit,) = idx.ask(question, k=1)
        (echo,) = idx.ask(question, k=1, weights=replace(rank.HYBRID, premise=False))
    finally:
        idx.close()
    assert (hit.video_id, hit.seconds) == ("UF8uR6Z6KLc", 390)
    assert (echo.video_id, echo.seconds) == ("UF8uR6Z6KLc", 375)
    # The passage keeps its score: only the moment inside it moved.
    assert hit.score == pytest.approx(echo.score)


def test_inside_a_passage_each_sentence_takes_a_share_of_the_one_before(sample_index: Path) -> None:
    """The moment step gives every segment `moment_previous_words` of the word-level score of the segment before it
    in its passage (none for a passage's first), for any question; at 0 (and no premise) it adds nothing."""
    from dataclasses import replace

    import numpy as np

    from search.retrieve import open_index

    question = "how did a calligraphy class end up shaping the fonts of the Macintosh?"
    idx = open_index(sample_index)
    try:
        top = idx._moments(question, 1, None, None, rank.HYBRID)[0]
        _, asked = idx._encode_question(question)
        assert asked is not None
        reading = idx._read_words(asked, [top.chunk])
        bonus = idx._moment_bonus(question, reading, [top.chunk], rank.HYBRID)
        off = idx._moment_bonus(
            question, reading, [top.chunk], replace(rank.HYBRID, moment_previous_words=0.0)
        )
    finally:
        idx.close()
    own = reading.table.mean(axis=0)
    assert len(own) >= 2 and rank.premise_end(question) is None
    assert bonus is not None and off is None
    assert bonus.tolist() == pytest.approx(
        (rank.HYBRID.moment_previous_words * np.r_[0.0, own[:-1]]).tolist()
    )


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "scripts" / "eval").glob("questions*.jsonl")))
def test_every_question_set_cites_anchors_of_the_shared_notes(shared_notes: Path, name: str) -> None:
    """scripts/eval/check_questions.py passes each set: its notes exist, their video ids match, and every gold
    second is an anchor of its note (a question set added or edited by hand is checked like the first)."""
    import subprocess

    checker = REPO / "scripts" / "eval" / "check_questions.py"
    path = REPO / "scripts" / "eval" / name
    proc = subprocess.run(
        [sys.executable, str(checker), "--notes", str(shared_notes), "--questions", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stdout + proc.stderr
