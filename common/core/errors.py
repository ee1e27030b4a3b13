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


class ConcurrentWriteError(RetrainError):
    """A conditional write lost a race: the object changed since it was read (nothing was overwritten)."""


class DataValidationError(RetrainError):
    """Market data fails a validation rule whose policy is to refuse it (e.g. gaps under gap_policy=reject)."""


class DatasetMismatchError(RetrainError):
    """The stored data no longer holds what a run's dataset manifest pinned (its object version is gone, or
    its bytes or bar range differ): training on it would not be training on the prepared dataset."""


class MarketDataError(RetrainError):
    """The market-data vendor could not deliver candles for a symbol."""


class UnknownSymbolError(MarketDataError):
    """The vendor does not list the symbol (a configuration problem: no retry helps)."""


class RegionBlockedError(MarketDataError):
    """The vendor refuses this machine's location (Binance: HTTP 451); no retry helps, another region or host does."""


class ProviderUnavailableError(MarketDataError):
    """The vendor kept failing (429, 5xx, timeouts) after every retry."""
