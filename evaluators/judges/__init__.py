"""LLM-as-judge evaluators and their client (litellm)."""

from evaluators.judges import builtin as builtin
