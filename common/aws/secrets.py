"""Secrets (vendor API keys, the Telegram token) from AWS Secrets Manager, cached per warm Lambda.

The one place that reads secrets; values never appear in the template, code or logs.
"""

from __future__ import annotations

import json

from common.core.errors import ConfigurationError

CACHE_SECONDS = 300


def read_secret(name: str, *, field: str | None = None) -> str:
    """The secret's string; with ``field``, that key of a JSON secret (a plain string is returned as is)."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        value = parameters.get_secret(name, max_age=CACHE_SECONDS)
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read secret {name!r} from Secrets Manager: {exc}") from None
    text = value.decode() if isinstance(value, bytes) else str(value)
    if field is None:
        return text
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(document, dict) or not isinstance(document.get(field), str):
        raise ConfigurationError(f"secret {name!r} is JSON without a string field {field!r}")
    return document[field]
