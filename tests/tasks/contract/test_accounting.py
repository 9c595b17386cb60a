"""pulled = normalized + quarantined, on every page: the contract splits any batch (good rows,
broken ones, poison) into records and rejects with nothing left over, and a page where a row
went missing in between fails the run instead of counting it as pulled and moving on."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.config import QualityConfig
from tasks.contract.accounting import check_accounted
from tasks.contract.suite import admit
from tasks.errors import RowsUnaccounted
from tests.conftest import BLANK_LOG

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
cells = st.one_of(
    st.none(), st.text(max_size=30), st.integers(-5, 10**12), st.floats(allow_nan=True),
    st.binary(max_size=8),
)  # fmt: skip
rows = st.fixed_dictionaries({
    "id": st.one_of(st.none(), st.text(min_size=1, max_size=12)),
    "ts": st.one_of(st.none(), st.just(NOW - timedelta(hours=1)), st.just(NOW + timedelta(days=9))),
    "prompt": cells, "response": cells, "status": st.sampled_from(["ok", "error", None, "odd"]),
    "input_tokens": cells, "latency_ms": cells, "context": cells,
})  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, max_size=12))
def test_every_row_of_any_batch_is_a_record_or_a_reject(batch: list[dict[str, Any]]) -> None:
    pulled = [{**BLANK_LOG, **row} for row in batch]
    admission = admit(pulled, "canonical", QualityConfig(), now=NOW)
    check_accounted(pulled, admission)  # raises when a row went missing
    assert len(admission.records) + len(admission.rejects) == len(pulled)


def test_a_row_lost_between_pull_and_write_fails_the_page() -> None:
    pulled = [{**BLANK_LOG, "id": f"r{i}", "ts": NOW - timedelta(minutes=i), "prompt": "q"}
              for i in range(3)]  # fmt: skip
    admission = admit(pulled, "canonical", QualityConfig(), now=NOW)
    assert len(admission.records) == 3
    lost = admission.model_copy(update={"records": admission.records[:2]})
    with pytest.raises(RowsUnaccounted, match=r"3 rows pulled but 2 normalized .* r2"):
        check_accounted(pulled, lost)
