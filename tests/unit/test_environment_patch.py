"""The local stack changes this process's environment and must leave it exactly as it found it."""

from __future__ import annotations

import os

from common.core.settings import get_settings
from retrain.stack.process import EnvironmentPatch, patched_environment


def test_patch_sets_unsets_and_restores(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "developer")
    monkeypatch.setenv("RETRAIN_INTERVAL", "1h")
    monkeypatch.delenv("RETRAIN_DATA_BUCKET", raising=False)
    patch = EnvironmentPatch()
    patch.set({"RETRAIN_DATA_BUCKET": "local-bucket", "RETRAIN_INTERVAL": "1d"})
    patch.set({"RETRAIN_INTERVAL": "1d"})  # a second change keeps the first original value
    patch.unset("AWS_PROFILE")
    assert os.environ["RETRAIN_DATA_BUCKET"] == "local-bucket" and "AWS_PROFILE" not in os.environ
    assert get_settings().data_bucket == "local-bucket", "settings see the change (cache dropped)"
    patch.restore()
    assert os.environ["AWS_PROFILE"] == "developer"
    assert os.environ["RETRAIN_INTERVAL"] == "1h"
    assert "RETRAIN_DATA_BUCKET" not in os.environ
    assert get_settings().data_bucket is None and get_settings().interval == "1h"


def test_patched_environment_restores_on_error(monkeypatch):
    monkeypatch.delenv("RETRAIN_DATA_BUCKET", raising=False)
    try:
        with patched_environment({"RETRAIN_DATA_BUCKET": "temporary"}):
            assert get_settings().data_bucket == "temporary"
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "RETRAIN_DATA_BUCKET" not in os.environ
    assert get_settings().data_bucket is None
