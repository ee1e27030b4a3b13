"""``python -m retrain.stack.daemon``: host the embedded stack until SIGTERM/SIGINT (``retrain up``)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from common.core.errors import RetrainError
from retrain.stack.config import load_local_config
from retrain.stack.embedded import STATE_FILE, EmbeddedStack


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        config = load_local_config()
    except RetrainError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    state_file = Path(config.state_dir).resolve() / STATE_FILE
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def log(message: str) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)

    stack = EmbeddedStack(config, progress=log)
    try:
        info = stack.start()
    except RetrainError as exc:
        log(f"error: {exc}")
        return 1
    try:
        info.save(state_file)
        log(f"ready: {info.aws_endpoint} (AWS), {info.mlflow_uri} (MLflow)")
        stop.wait()
        log("stopping")
    finally:
        stack.stop()
        state_file.unlink(missing_ok=True)
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
