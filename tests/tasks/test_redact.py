"""One redaction function: configured secrets (whatever their format) and key shapes masked."""

import pytest

from tasks import redact


def test_configured_secrets_and_their_url_passwords_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSAY_SLACK_BOT_TOKEN", "plain-looking-token-123")
    monkeypatch.setenv("ASSAY_DATABASE_URL", "postgresql://app:s3cr3t-pass@db.internal/scores")
    monkeypatch.setenv("ASSAY_JUDGE_KEY_PROXY", "proxy-key-9876543")
    redact.refresh()
    text = redact.redact(
        "token plain-looking-token-123, password s3cr3t-pass, key proxy-key-9876543, "
        "url postgresql://app:s3cr3t-pass@db.internal/scores"
    )
    for secret in ("plain-looking-token-123", "s3cr3t-pass", "proxy-key-9876543"):
        assert secret not in text
    assert text.count("[redacted]") >= 4


def test_key_shapes_and_bearer_headers_are_masked_without_configuration() -> None:
    redact.refresh()
    text = redact.redact(
        "sk-proj-abcdefghijklmnopqrstuvwx xoxb-1234567890-abcdef Authorization: Bearer abc.def.ghi123"
        " postgresql://u:hunter22@h/db"
    )
    assert "abcdefghijklmnop" not in text and "xoxb-1234567890" not in text
    assert "abc.def.ghi123" not in text and "hunter22" not in text


def test_ordinary_text_is_left_alone() -> None:
    redact.refresh()
    sentence = "The refund takes 14 days; basic plans include email support."
    assert redact.redact(sentence) == sentence


def test_a_secret_read_from_a_block_is_masked_from_then_on() -> None:
    redact.remember_secret("from-a-secret-block-42")
    assert "from-a-secret-block-42" not in redact.redact("value from-a-secret-block-42 here")
