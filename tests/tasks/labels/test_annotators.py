"""One person, one name: what `assay annotate invite` and a trusted proxy's header become."""

import pytest

from tasks.errors import ConfigError
from tasks.labels.annotators import normalise_annotator


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("alice", "alice"),
        ("  Alice ", "alice"),
        ("ＡＬＩＣＥ", "alice"),  # fullwidth (NFKC)
        ("Straße", "strasse"),  # casefold, not lower()
        ("Zoë Ng", "zoë ng"),
        ("Zoe\u0308", "zoë"),  # combining diaeresis composes to the same letter
        ("Иван", "иван"),  # one script that is not Latin is fine
        ("carol@example.com", "carol@example.com"),
    ],
)
def test_spellings_of_one_name_are_one_annotator(given: str, stored: str) -> None:
    assert normalise_annotator(given) == stored


@pytest.mark.parametrize(
    "hostile",
    [
        "alice\u200b",  # zero-width space
        "al\u202eice",  # right-to-left override
        "ali\u00adce",  # soft hyphen
        "alice\x1b[31m",  # terminal escape
        "\u0430lice",  # Cyrillic a in a Latin name
        "\u03bfscar",  # Greek omicron
        "   ",
        "a" * 201,
    ],
)
def test_invisible_and_look_alike_names_are_refused(hostile: str) -> None:
    with pytest.raises(ConfigError):
        normalise_annotator(hostile)
