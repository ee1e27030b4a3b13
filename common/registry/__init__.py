"""The model registry: MLflow (client and REST reader) and an in-memory one for the backtest, and the promotion rule with the tags that record it."""
