"""Every ``retrain`` command unwinds on SIGTERM as on Ctrl-C: whatever it started for itself (a stack, a
server) is stopped by the same ``finally`` blocks, and the command exits 130 with one line saying so."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from retrain import cli


def test_sigterm_unwinds_a_command_like_ctrl_c(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    cleaned: list[str] = []

    def command(args: Any) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            return 0  # never reached: the handler raised
        finally:
            cleaned.append("stack stopped")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: type("Args", (), {"run": staticmethod(command)})())
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([]) == 130
    assert cleaned == ["stack stopped"]
    assert "interrupted: stopped cleanly" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler is restored"
