"""PII detection: reports which kinds of personal data appear, never the values."""

import ipaddress
import re
from collections.abc import Iterator
from typing import ClassVar, Literal

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

from evaluators.base import Cost, EvalContext, Evaluator, Score
from evaluators.heuristics.text import TextField, flag_hits, texts
from evaluators.records import LogRecord
from evaluators.registry import registered

PiiKind = Literal["email", "phone", "card", "ssn", "iban", "ip"]
ALL_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "ssn", "iban", "ip")

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b")
# phonenumbers' matcher is precise but slow; only text with a long enough digit run can match.
_PHONE_HINT = re.compile(r"(?:\d[\s().-]{0,2}){7,}")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            yield m.span()


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if ssn.is_valid(m.group()):
            yield m.span()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        if iban.is_valid(m.group()):
            yield m.span()


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield m.span()


def _phones(text: str, region: str) -> Iterator[tuple[int, int]]:
    if not _PHONE_HINT.search(text):
        return
    for match in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID
    ):
        yield match.start, match.end


def find_pii(
    text: str, kinds: tuple[PiiKind, ...] = ALL_KINDS, region: str = "US"
) -> dict[PiiKind, list[tuple[int, int]]]:
    """Spans of each kind of PII found in `text`. Cards win over phones on the same digits."""
    finders = {
        "email": _emails,
        "card": _cards,
        "ssn": _ssns,
        "iban": _ibans,
        "ip": _ips,
    }
    found: dict[PiiKind, list[tuple[int, int]]] = {}
    for kind in kinds:
        if kind == "phone":
            continue
        spans = list(finders[kind](text))
        if spans:
            found[kind] = spans
    if "phone" in kinds:
        taken = [span for spans in found.values() for span in spans]
        phones = [
            s for s in _phones(text, region) if not any(s[0] < t[1] and t[0] < s[1] for t in taken)
        ]
        if phones:
            found["phone"] = phones
    return found


def mask_pii(text: str, region: str = "US") -> str:
    """`text` with every PII span replaced by `[KIND]`, for quarantine and Slack excerpts."""
    spans = sorted(
        (start, end, kind)
        for kind, kind_spans in find_pii(text, region=region).items()
        for start, end in kind_spans
    )
    out, cursor = [], 0
    for start, end, kind in spans:
        if start < cursor:
            continue
        out.append(text[cursor:start])
        out.append(f"[{kind.upper()}]")
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


@registered
class Pii(Evaluator):
    """Flags personal data (emails, phones, cards, SSNs, IBANs, IPs); reports kinds, not values."""

    name: ClassVar[str] = "pii"
    version: ClassVar[str] = "1"
    cost: ClassVar[Cost] = Cost.FREE

    fields: tuple[TextField, ...] = ("response",)
    kinds: tuple[PiiKind, ...] = ALL_KINDS
    region: str = "US"

    async def evaluate(self, record: LogRecord, ctx: EvalContext) -> Score:
        scanned = texts(record, self.fields)
        if not scanned:
            return Score.skipped(f"no text in {', '.join(self.fields)}")
        hits: dict[str, set[str]] = {}
        for field, text in scanned:
            for kind in find_pii(text, self.kinds, self.region):
                hits.setdefault(kind, set()).add(field)
        return flag_hits(hits)
