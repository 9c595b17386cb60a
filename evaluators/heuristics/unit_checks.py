"""Free evaluators of whole sessions and traces: what no single log shows. A conversation that
went on and on, a user asking the same thing again, a final turn left unanswered; an agent
whose tools keep failing, that calls one tool with the same arguments over and over, or that
takes more steps than it should. Each declares the unit it reads (`unit`)."""

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import ClassVar

from pydantic import ConfigDict, Field

from evaluators.base import Score, Scorer
from evaluators.durations import Duration
from evaluators.heuristics.text import content_words
from evaluators.registry import evaluator_classes, registered
from evaluators.unit_records import Session, Trace, UnitKind


class UnitEvaluator(Scorer):
    """A free evaluator of one unit kind. `evaluate` never raises on a well-formed unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: ClassVar[str] = "1"
    unit: ClassVar[UnitKind]

    def evaluate(self, unit: Session | Trace) -> Score:
        if isinstance(unit, Trace) and not any(s.kind == "llm" for s in unit.steps):
            return Score.skipped("no LLM call in this trace")
        return self.check(unit)

    def check(self, unit: Session | Trace) -> Score:
        raise NotImplementedError


#: Session and trace evaluators register in the one registry, like log evaluators.
unit_evaluator = registered


class _UnitEvaluatorsView(Mapping[str, type[UnitEvaluator]]):
    """The session and trace evaluators of the one registry, by name, read when asked."""

    def __getitem__(self, name: str) -> type[UnitEvaluator]:
        return unit_evaluators()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(unit_evaluators())

    def __len__(self) -> int:
        return len(unit_evaluators())


UNIT_EVALUATORS: Mapping[str, type[UnitEvaluator]] = _UnitEvaluatorsView()


def unit_evaluators() -> dict[str, type[UnitEvaluator]]:
    """Every session and trace evaluator, free ones and judges (a view of the one registry)."""
    return {
        name: cls
        for name, cls in evaluator_classes().items()
        if isinstance(cls, type) and issubclass(cls, UnitEvaluator)
    }


@unit_evaluator
class TurnCount(UnitEvaluator):
    """Passes while the conversation stays within `max_turns` turns."""

    name = "turn_count"
    unit = "session"
    max_turns: int = Field(default=10, ge=1)

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Session)
        turns = len(unit.turns)
        return Score(score=min(1.0, self.max_turns / turns), passed=turns <= self.max_turns,
                     reason=f"{turns} turn(s) (limit {self.max_turns})")  # fmt: skip


@unit_evaluator
class RepeatedQuestion(UnitEvaluator):
    """Fails when the user asks (nearly) the same thing again: the earlier answer did not help.
    Similarity is the word overlap (Jaccard) of two user turns, stop words aside."""

    name = "repeated_question"
    unit = "session"
    similarity: float = Field(default=0.6, gt=0, le=1)

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Session)
        asked = [content_words(t.prompt) for t in unit.turns]
        for later in range(1, len(asked)):
            for earlier in range(later):
                a, b = asked[earlier], asked[later]
                if a and b and len(a & b) / len(a | b) >= self.similarity:
                    return Score.verdict(False, f"turn {later + 1} repeats turn {earlier + 1}")
        return Score.verdict(True, "no question asked twice")


@unit_evaluator
class SessionLimits(UnitEvaluator):
    """Passes while the session's duration and total logged cost stay within bounds."""

    name = "session_limits"
    unit = "session"
    max_duration: Duration = Field(default=timedelta(minutes=30))
    max_cost_usd: float | None = Field(default=None, ge=0)

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Session)
        took = unit.ended_at - unit.started_at
        problems = []
        if took > self.max_duration:
            problems.append(f"lasted {took} (limit {self.max_duration})")
        cost = unit.cost_usd
        if self.max_cost_usd is not None and cost is not None and cost > self.max_cost_usd:
            problems.append(f"cost ${cost:.4f} (limit ${self.max_cost_usd:.4f})")
        if problems:
            return Score.verdict(False, "; ".join(problems))
        spent = "" if cost is None else f", ${cost:.4f}"
        return Score.verdict(True, f"lasted {took}{spent}")


@unit_evaluator
class UnansweredFinalTurn(UnitEvaluator):
    """Fails when the conversation ended on a turn with no answer (empty, or an error)."""

    name = "unanswered_final_turn"
    unit = "session"

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Session)
        last = unit.turns[-1]
        if last.status == "error" or not (last.response or "").strip():
            return Score.verdict(False, f"the last turn ({last.id}) got no answer")
        return Score.verdict(True, "the last turn was answered")


@unit_evaluator
class ToolErrorRate(UnitEvaluator):
    """The share of an agent's tool calls that failed, at most `max_rate`."""

    name = "tool_error_rate"
    unit = "trace"
    max_rate: float = Field(default=0.2, ge=0, le=1)

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Trace)
        calls = unit.tool_calls()
        if not calls:
            return Score.skipped("no tool calls")
        failed = [c for c in calls if c.error]
        rate = len(failed) / len(calls)
        names = Counter(c.name or "?" for c in failed)
        detail = ", ".join(f"{n} x{k}" for n, k in names.most_common(3))
        return Score(score=1 - rate, passed=rate <= self.max_rate,
                     reason=f"{len(failed)} of {len(calls)} tool call(s) failed"
                     + (f" ({detail})" if detail else ""))  # fmt: skip


@unit_evaluator
class ToolLoop(UnitEvaluator):
    """Fails when one tool is called with the same arguments more than `max_repeats` times."""

    name = "tool_loop"
    unit = "trace"
    max_repeats: int = Field(default=3, ge=1)

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Trace)
        calls = Counter((c.name, c.input) for c in unit.tool_calls())
        if not calls:
            return Score.skipped("no tool calls")
        (name, _args), times = calls.most_common(1)[0]
        if times > self.max_repeats:
            return Score.verdict(
                False, f"{name} called {times} times with the same arguments (limit "
                f"{self.max_repeats})",
            )  # fmt: skip
        return Score.verdict(True, f"no tool repeated more than {self.max_repeats} times")


@unit_evaluator
class StepLimit(UnitEvaluator):
    """Passes while the agent run takes at most `max_steps` steps."""

    name = "step_limit"
    unit = "trace"
    max_steps: int = Field(default=25, ge=1)

    def check(self, unit: Session | Trace) -> Score:
        assert isinstance(unit, Trace)
        steps = len(unit.steps)
        return Score(score=min(1.0, self.max_steps / steps), passed=steps <= self.max_steps,
                     reason=f"{steps} step(s) (limit {self.max_steps})"
                     + ("; the trace is incomplete" if unit.incomplete else ""))  # fmt: skip
