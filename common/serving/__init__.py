"""Serving champions: the prediction API, the model cache with zero-downtime hot swap, the feature rows asked about, and the batch predictions."""
