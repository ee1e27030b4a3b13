"""Market data and what is derived from it: OHLCV bars (validated, stored, fetched, ingested), features, labels, dataset manifests, and the prediction log."""
