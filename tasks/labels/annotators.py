"""Who is answering on the annotation page: annotators invited per queue, each with a link whose
token only its SHA-256 is kept of, and one rule for what counts as the same person's name.

A request body never says who it is from. The page sends the token from its link (an
`Authorization` header, which a cross-origin form cannot set), or a reverse proxy the operator
listed sets a header after its own sign-in.
"""

import hashlib
import secrets
import unicodedata

import sqlalchemy as sa
from confusable_homoglyphs import confusables

from tasks.errors import ConfigError
from tasks.store.sql import query

MAX_NAME = 200


def normalise_annotator(name: str) -> str:
    """One spelling per person: NFKC, casefolded, outer spaces dropped. Invisible and control
    characters are refused (`alice` and `alice` + ZERO WIDTH SPACE would be two people), and so
    is a name mixing scripts (a Cyrillic `а` inside a Latin name looks like the Latin one)."""
    folded = unicodedata.normalize("NFKC", name).casefold().strip()
    folded = unicodedata.normalize("NFKC", folded)  # casefolding can leave it unnormalised
    if not folded:
        raise ConfigError("an annotator's name cannot be empty")
    if len(folded) > MAX_NAME:
        raise ConfigError(f"an annotator's name is at most {MAX_NAME} characters")
    for char in folded:
        category = unicodedata.category(char)
        if category[0] in "CZ" and char != " ":  # control, format (invisible), separators
            raise ConfigError(
                f"annotator {name!r}: character U+{ord(char):04X} "
                f"({unicodedata.name(char, 'unnamed')}) is invisible or a control character"
            )
    if confusables.is_mixed_script(folded):
        raise ConfigError(
            f"annotator {name!r} mixes scripts ({', '.join(sorted(_scripts(folded)))}): "
            "a look-alike of another name; spell it in one script"
        )
    return folded


def _scripts(text: str) -> set[str]:
    from confusable_homoglyphs import categories

    return set(categories.unique_aliases(text)) - {"COMMON"}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(engine: sa.Engine, queue_id: int, names: list[str]) -> dict[str, str]:
    """A fresh token for each annotator (replacing an earlier one): normalised name -> token.
    The tokens are returned once and never stored."""
    normalised = [normalise_annotator(name) for name in names]
    tokens = {name: secrets.token_urlsafe(32) for name in normalised}
    with engine.begin() as conn:
        for name, token in tokens.items():
            conn.execute(sa.text(query("labels", "invite_annotator")), {
                "queue_id": queue_id, "annotator": name, "token_sha256": token_digest(token),
            })  # fmt: skip
    return tokens


def revoke(engine: sa.Engine, queue_id: int, name: str) -> bool:
    """The annotator's link stops working and the item they hold is freed at once."""
    annotator = normalise_annotator(name)
    where = {"queue_id": queue_id, "annotator": annotator}
    with engine.begin() as conn:
        revoked = conn.execute(sa.text(query("labels", "revoke_annotator")), where).rowcount
        conn.execute(sa.text(query("labels", "release_annotator_claims")), where)
    return bool(revoked)


def annotator_of(engine: sa.Engine, queue_id: int, token: str) -> str | None:
    if not token or len(token) > 200:
        return None
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(query("labels", "annotator_of_token")),
            {"queue_id": queue_id, "token_sha256": token_digest(token)},
        ).scalar_one_or_none()
    return None if found is None else str(found)


def invited(engine: sa.Engine, queue_id: int) -> int:
    """How many annotators can sign in to the queue now."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query("labels", "list_annotators")), {"queue_id": queue_id})
        return sum(1 for row in rows if row.revoked_at is None)
