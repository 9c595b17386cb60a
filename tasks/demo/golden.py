"""The demo's golden dataset: hand-written questions with the answer a person expects (from the
demo shop's policies), plus hard cases curated from the seeded production failures."""

from tasks.datasets.items import DatasetItem
from tasks.demo.data import RAG_PASSAGES

QUESTIONS = [
    ("How long do I have to return an item?", 0, "30 days"),
    ("Do returns need the accessories?", 0, "all accessories"),
    ("How long is the warranty against manufacturing defects?", 1, "24 months"),
    ("How fast is express shipping?", 2, "1-2 business days"),
    ("How long does standard shipping take?", 2, "3-5"),
    ("When are firmware updates installed?", 3, "overnight"),
    ("How long does the e-bike battery take to charge?", 4, "4 hours"),
    ("How far does the e-bike go on one charge?", 4, "60-80 km"),
]


def hand_written() -> list[DatasetItem]:
    return [
        DatasetItem(
            id=f"policy-{n:02d}",
            input=question,
            context=[RAG_PASSAGES[passage]],
            expected=expected,
            tags=["policy"],
        )
        for n, (question, passage, expected) in enumerate(QUESTIONS)
    ]
