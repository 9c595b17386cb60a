"""Alerting: rule statistics and state, Slack messages, the outbox and its delivery."""
