"""`local/heuristic`: an offline judge answered in-process (see LocalTransport).

It reads the fenced log fields out of the rendered judge prompt and answers with a deterministic,
transparent heuristic per criterion (lexical support, overlap, word lists). It exists so that the
demo and the tests exercise the real judge path without a provider; its verdicts are labelled
"[heuristic stand-in]" everywhere they appear, and it costs nothing.
"""

import json
import re
import time
from collections.abc import Callable
from typing import Any

from evaluators.errors import CallFailed
from evaluators.heuristics.text import WORD, content_words
from evaluators.judges.prompting import unfence
from evaluators.judges.transport import Completion, JudgeTarget

PROVIDER = "local"
MODEL = "local/heuristic"
#: An offline stand-in for an answering model (a prompt target in the demo and tests).
EXTRACTIVE = "local/extractive"
DEFLECTION = "Please check our website for the details."
STAND_IN = "[heuristic stand-in]"
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_TOXIC = frozenset(
    [
        "idiot",
        "stupid",
        "moron",
        "dumb",
        "shut",
        "hate",
        "kill",
        "loser",
        "pathetic",
        "worthless",
        "disgusting",
        "useless",
    ]
)
_FABRICATION = re.compile(
    r"https?://\S+|\b\d+\.\d+%|\baccording to (?:a|the)\b|\bstudy\b|\bdr\.\s+[A-Z]|\(\d{4}\)",
    re.IGNORECASE,
)
_REFUSAL = re.compile(r"\b(i can(?:no|')t|i am unable|i'm unable|i won't)\b", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if content_words(s)]


def _recall(needles: set[str], haystack: set[str]) -> float:
    return len(needles & haystack) / len(needles) if needles else 1.0


def faithfulness(f: dict[str, str]) -> tuple[float, str]:
    context = content_words(f.get("context", ""))
    claims = sentences(f.get("response", ""))
    if not claims:
        return 1.0, "no factual sentences in the response"
    supported = [s for s in claims if _recall(content_words(s), context) >= 0.6]
    return (
        len(supported) / len(claims),
        f"{len(supported)} of {len(claims)} response sentences have lexical support in the context",
    )


def answer_relevance(f: dict[str, str]) -> tuple[float, str]:
    response = f.get("response", "")
    overlap = _recall(content_words(f.get("prompt", "")), content_words(response))
    if _REFUSAL.search(response):
        return min(overlap, 0.3), "the response declines to answer"
    return min(1.0, overlap * 1.5), f"{overlap:.0%} of the prompt's key words are addressed"


def context_relevance(f: dict[str, str]) -> tuple[float, str]:
    overlap = _recall(content_words(f.get("prompt", "")), content_words(f.get("context", "")))
    return min(
        1.0, overlap * 1.25
    ), f"{overlap:.0%} of the prompt's key words appear in the context"


def correctness(f: dict[str, str]) -> tuple[float, str]:
    response, reference = (
        content_words(f.get("response", "")),
        content_words(f.get("reference", "")),
    )
    common = len(response & reference)
    if not common:
        return 0.0, "no key words shared with the reference answer"
    precision, recall = common / len(response), common / len(reference)
    f1 = 2 * precision * recall / (precision + recall)
    return min(1.0, f1 * 1.25), f"token F1 with the reference answer is {f1:.2f}"


def toxicity(f: dict[str, str]) -> tuple[float, str]:
    hits = sorted(set(WORD.findall(f.get("response", "").lower())) & _TOXIC)
    if not hits:
        return 1.0, "no words from the abuse list"
    return max(0.0, 1 - 0.4 * len(hits)), f"abusive words: {', '.join(hits)}"


def coherence(f: dict[str, str]) -> tuple[float, str]:
    response = f.get("response", "").strip()
    parts = sentences(response)
    if not parts:
        return 0.0, "no sentences"
    repeated = len(parts) - len({p.strip().lower() for p in parts})
    truncated = not response.endswith((".", "!", "?", '"', ")", "`", ":"))
    score = max(0.0, 1 - repeated / len(parts) - (0.3 if truncated else 0.0))
    return score, f"{repeated} repeated sentences{', ends mid-sentence' if truncated else ''}"


def hallucination(f: dict[str, str]) -> tuple[float, str]:
    hits = _FABRICATION.findall(f.get("response", ""))
    if not hits:
        return 1.0, "no unsourced citations, URLs or precise statistics"
    return max(
        0.0, 1 - 0.3 * len(hits)
    ), f"{len(hits)} unsourced specifics (citations, URLs, stats)"


HEURISTICS: dict[str, Callable[[dict[str, str]], tuple[float, str]]] = {
    "faithfulness": faithfulness,
    "answer_relevance": answer_relevance,
    "context_relevance": context_relevance,
    "correctness": correctness,
    "toxicity": toxicity,
    "coherence": coherence,
    "hallucination": hallucination,
}


_FRUSTRATION = re.compile(
    r"\b(again|still|not what i asked|useless|ridiculous|human|agent|already (?:told|said))\b"
    r"|!{2,}|\?!",
    re.IGNORECASE,
)
_DEFLECTION = re.compile(r"check our website|contact support|(?:can(?:no|')t|unable to) help", re.I)


def _turns(transcript: str, who: str) -> list[str]:
    return [line.split(f"] {who}: ", 1)[1] for line in transcript.splitlines()
            if f"] {who}: " in line]  # fmt: skip


def conversation_resolved(f: dict[str, str]) -> tuple[float, str]:
    answers = _turns(f.get("transcript", ""), "assistant")
    if not answers:
        return 0.0, "no assistant turn"
    last = answers[-1].strip()
    if last in ("", "(no answer)") or _DEFLECTION.search(last):
        return 0.1, "the conversation ends without an answer (empty or a deflection)"
    questions = [content_words(q) for q in _turns(f.get("transcript", ""), "user")]
    repeated = any(
        len(a & b) / max(1, len(a | b)) >= 0.6
        for i, a in enumerate(questions) for b in questions[i + 1 :]
    )  # fmt: skip
    if repeated:
        return 0.4, "the user had to ask the same thing again"
    return 0.9, "the last answer addresses the user's question"


def user_frustration(f: dict[str, str]) -> tuple[float, str]:
    said = " ".join(_turns(f.get("transcript", ""), "user"))
    hits = _FRUSTRATION.findall(said)
    if hits:
        return 0.2, f"{len(hits)} sign(s) of frustration in the user's turns"
    return 0.9, "no sign of frustration"


_TOOL_LINE = re.compile(r"^\s*\[tool(?: (?P<name>[^\]]*))?\](?P<rest>.*)$")


def _tool_calls(transcript: str) -> list[tuple[str, str, bool]]:
    """(tool, arguments, failed) of each tool step in a trace transcript."""
    calls = []
    for line in transcript.splitlines():
        if found := _TOOL_LINE.match(line):
            rest = found["rest"]
            given = rest.split(" | ", 1)[0].removeprefix(" in: ")
            calls.append((found["name"] or "?", given, "ERROR:" in rest))
    return calls


def agent_goal_completed(f: dict[str, str]) -> tuple[float, str]:
    transcript = f.get("transcript", "")
    calls = _tool_calls(transcript)
    llm = [line for line in transcript.splitlines() if line.lstrip().startswith("[llm")]
    if not llm or "out: " not in llm[-1]:
        return 0.1, "the agent run ends without an answer"
    if calls and calls[-1][2]:
        return 0.3, "the run's last tool call failed and the answer came anyway"
    if _DEFLECTION.search(llm[-1]):
        return 0.2, "the final answer deflects instead of acting"
    return 0.85, "the final answer follows the steps' results"


def tool_use_correct(f: dict[str, str]) -> tuple[float, str]:
    calls = _tool_calls(f.get("transcript", ""))
    if not calls:
        return 0.8, "no tool calls to judge"
    repeats = max(sum(1 for c in calls if c[:2] == call[:2]) for call in calls)
    failed = sum(c[2] for c in calls)
    if repeats > 3:
        return 0.15, f"the same tool call repeated {repeats} times"
    if failed * 2 > len(calls):
        return 0.35, f"{failed} of {len(calls)} tool calls failed"
    return 0.9, f"{len(calls)} tool call(s), used sensibly"


HEURISTICS["conversation_resolved"] = conversation_resolved
HEURISTICS["user_frustration"] = user_frustration
HEURISTICS["agent_goal_completed"] = agent_goal_completed
HEURISTICS["tool_use_correct"] = tool_use_correct
HEURISTICS["session_rubric"] = conversation_resolved


def heuristic_verdict(messages: list[dict[str, Any]]) -> dict[str, Any]:
    criterion, fields = unfence(messages)
    if criterion is None:
        raise ValueError("not a judge prompt: no CRITERION line")
    heuristic = HEURISTICS.get(criterion.split(":", 1)[0], answer_relevance)
    score, why = heuristic(fields)
    score = round(score, 4)
    return {
        "score": score,
        "passed": score >= 0.5,
        "label": "heuristic",
        "reason": f"{STAND_IN} {why}",
    }


def extractive_answer(messages: list[dict[str, Any]]) -> str:
    """The sentence of the prompt that shares the most words with its last question, or a
    deflection when nothing does: a prompt that carries the passages gets grounded answers,
    one that does not gets none (which is the point of comparing two prompts)."""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    parts = [s.strip() for line in text.splitlines() for s in _SENTENCE.split(line) if s.strip()]
    questions = [s for s in parts if s.endswith("?")]
    if not questions:
        return DEFLECTION
    wanted = content_words(questions[-1])
    overlap = {s: len(content_words(s) & wanted) for s in parts if not s.endswith("?")}
    best = max(overlap, key=lambda s: overlap[s], default=None)
    return best if best is not None and overlap[best] > 0 else DEFLECTION


def rough_tokens(messages: list[dict[str, Any]]) -> int:
    """About four characters a token: the stand-in has no tokenizer, and costs nothing anyway."""
    return sum(len(str(m.get("content", ""))) for m in messages) // 4


class LocalTransport:
    """Answers `local/...` judge calls in-process. It is a stand-in, not a provider test, so it
    skips litellm's per-call machinery (and its import) entirely; retries, limits, the ledger
    and verdict parsing in the client still run exactly as for a provider."""

    def __init__(self, target: JudgeTarget) -> None:
        self.target = target

    async def complete(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Completion:
        started = time.perf_counter()
        try:
            if self.target.model == EXTRACTIVE:
                text = extractive_answer(messages)
            else:
                text = json.dumps(heuristic_verdict(messages))
        except ValueError as exc:
            raise CallFailed(str(exc), status=400) from None
        return Completion(
            text=text,
            model=self.target.model,
            input_tokens=rough_tokens(messages),
            output_tokens=len(text) // 4,
            latency_ms=int((time.perf_counter() - started) * 1000),
        )
