"""Whether a question is mostly not English: the bundled model reads English, so such a question gets a hint.

A cheap guess, no model: a question is mostly not English when most of its letters are outside the Latin
alphabet (Japanese, Chinese, Russian, Greek, ...), or when it has more words of another European language (the
commonest function words of German, French, Spanish, Italian, Portuguese, Dutch, Polish, Turkish, or any word with a
letter English does not use) than English stopwords, and at least two.
"""

from __future__ import annotations

import re
import unicodedata

from search.rank import STOPWORDS

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

#: The commonest short function words of other languages that are not also English words (so "die", "a", "in"
#: and "was" are left out). A question with two or more of them, and more of them than English stopwords, is foreign.
FOREIGN = frozenset(
    """
    de der das und ist nicht ich wie warum welche kann ein eine einen mit auf für wird werden wurde sich auch oder
    aber wenn sind habe mein meine bei nach zum zur dem den des
    le la les des est une pour pas que qui dans avec sur mon ma mes est-ce pourquoi comment quel quelle je il
    el los las por qué cómo cuál cuando una es del mi mis para pero como muy hay puedo
    il gli della che perché come sono per una di mio mia non
    não uma com para por que como é meu minha os
    het een niet hoe waarom wat ik mijn zijn voor met op
    jak dlaczego czy jest nie się na że co mój
    nasıl neden bir ve bu için mi mı ne
    """.split()  # noqa: SIM905 - one line per language reads better than a list of 130 strings
)


#: Fewer letters than this say nothing of a language (the "ツ" of a shrug).
MIN_LETTERS = 3


def mostly_not_english(text: str) -> bool:
    """True when the text reads as another language (see the module doc); False for English and for text with no
    letters at all (an emoji, digits: no language to name)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    if len(letters) >= MIN_LETTERS and latin * 2 < len(letters):
        return True
    words = [w.casefold() for w in _WORD.findall(text)]
    # A word with a letter English does not use (é, ñ, ü, ı, ş) counts as foreign too.
    foreign = sum(1 for w in words if w in FOREIGN or not w.isascii())
    english = sum(1 for w in words if w in STOPWORDS)
    return foreign >= 2 and foreign > english


#: The hint, one line.
HINT = "the bundled model reads English: a question in another language rarely finds its answer"


def hint(question: str, bundled_model: bool) -> str | None:
    """The hint for a question, or None: only an index made with the bundled model (English only) gives it; a
    model of one's own may read the question's language (`ytnotes build --model`)."""
    return HINT if bundled_model and mostly_not_english(question) else None
