"""Process helpers for the local stack: liveness of a pid, and reversible environment changes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class EnvironmentPatch:
    """Sets (or unsets) variables of this process and later puts back what was there before.

    Settings are read from the environment and cached, so every change also drops that cache.
    """

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        _settings_changed()

    def unset(self, *names: str) -> None:
        for name in names:
            self._saved.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        _settings_changed()

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()
        _settings_changed()


@contextlib.contextmanager
def patched_environment(values: dict[str, str]) -> Iterator[None]:
    patch = EnvironmentPatch()
    patch.set(values)
    try:
        yield
    finally:
        patch.restore()


def _settings_changed() -> None:
    from common.core.settings import get_settings

    get_settings.cache_clear()
