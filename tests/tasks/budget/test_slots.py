"""Judge limits' names on the Prefect server: URL-safe, and apart per install when a namespace
is set (two installs on one server must not share their judges' slots)."""

import pytest
from pydantic import ValidationError

from tasks.budget.slots import limit_name
from tasks.settings import AssaySettings, get_settings


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> object:
    def use(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv("ASSAY_LIMIT_NAMESPACE", raising=False)
        else:
            monkeypatch.setenv("ASSAY_LIMIT_NAMESPACE", value)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


def test_two_installs_on_one_server_get_limits_of_their_own(namespace) -> None:  # type: ignore[no-untyped-def]
    namespace(None)
    assert limit_name("openai/gpt-4o-mini") == "assay-judge-openai-gpt-4o-mini"
    namespace("staging")
    assert limit_name("openai/gpt-4o-mini") == "assay-judge-staging-openai-gpt-4o-mini"


def test_a_namespace_is_a_plain_name() -> None:
    with pytest.raises(ValidationError):
        AssaySettings(limit_namespace="a/../b")
