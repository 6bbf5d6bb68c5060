"""The guess of whether a question is mostly not English (search/language.py): the hint `ask` gives."""

from __future__ import annotations

import pytest

from search.language import mostly_not_english


@pytest.mark.parametrize(
    "text",
    [
        "Wie lange muss ein Schweinebraten im Ofen garen?",
        "Comment faire une pâte brisée maison ?",
        "¿Cuándo hay que podar los rosales?",
        "Como tirar mancha de ferrugem de roupa branca?",
        "Hoe vaak moet ik mijn hond ontwormen?",
        "Evde baklava nasıl yapılır?",
        "美味しい味噌汁の作り方を教えてください",
        "Почему он бросил университет?",
    ],
)
def test_other_languages(text: str) -> None:
    assert mostly_not_english(text)


@pytest.mark.parametrize(
    "text",
    [
        "why did he drop out of college?",
        "How did a calligraphy class end up in the Macintosh?",
        "what does the café au lait example show about naïve Bayes?",  # a French word or two in English
        "is the Sistine Chapel ceiling a fresco?",
        "🍕🍕🍕",  # no letters: no language to name
        "¯\\_(ツ)_/¯",
        "",
        "1978",
    ],
)
def test_english_or_no_language(text: str) -> None:
    assert not mostly_not_english(text)
