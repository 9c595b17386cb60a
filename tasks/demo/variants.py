"""Two versions of the demo support bot, as `assay check --target` callables: one answers from
the retrieved passage, the other with a canned deflection. The demo checks both on a golden
dataset and compares them (prompt A against prompt B, in spirit)."""

from typing import Any


def grounded(item: dict[str, Any]) -> str:
    """Quotes the policy passage it was given."""
    passages = item.get("context") or []
    if not passages:
        return "Thanks for reaching out! Could you share your order number so I can check?"
    return f"According to our policy: {passages[0]}"


def terse(item: dict[str, Any]) -> str:
    """Never looks at the passage."""
    return "Please check our website for the details."
