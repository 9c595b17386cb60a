"""What a run has done so far, kept outside the page loop so a failure can still report."""

from typing import Any

from tasks.budget.sampling import merge_strata
from tasks.contract.suite import ContractSummary
from tasks.run.page import PageOutcome
from tasks.store.persist import PageCounts


class RunTally:
    def __init__(self) -> None:
        self.counts = PageCounts()
        self.contract = ContractSummary()
        self.strata: dict[str, dict[str, dict[str, int]]] = {}
        self.unscored: dict[str, dict[str, int]] = {}
        self.copied = 0
        self.held_elsewhere = 0
        self.late: dict[str, Any] | None = None

    def add(self, counts: PageCounts, contract: ContractSummary) -> None:
        self.counts = self.counts + counts
        self.contract = self.contract + contract

    def add_sampling(self, outcome: PageOutcome) -> None:
        for evaluator, strata in outcome.strata.items():
            merge_strata(self.strata.setdefault(evaluator, {}), strata)
        for evaluator, strata_left in outcome.unscored.items():
            left = self.unscored.setdefault(evaluator, {})
            for stratum, n in strata_left.items():
                left[stratum] = left.get(stratum, 0) + n
        self.copied += outcome.copied
        self.held_elsewhere += outcome.held_elsewhere
