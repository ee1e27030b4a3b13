"""Typed errors of the domain. Adapters translate them into HTTP 4xx, CLI messages or Step Functions
error names (the exception class name is the ``Error`` a state machine ``Catch`` matches on)."""


class RetrainError(Exception):
    """Base class: an expected failure with a message meant for the operator."""


class ConfigurationError(RetrainError):
    """Settings or deployment configuration is invalid or incomplete."""


class DataNotFoundError(RetrainError):
    """Requested market data does not exist in the store."""


class DataFormatError(RetrainError):
    """Stored or received market data cannot be parsed into OHLCV bars."""
