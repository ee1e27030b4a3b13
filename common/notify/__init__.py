"""Telling the operator: notification channels (Slack, webhook, SNS, a log) with per-execution idempotency."""
