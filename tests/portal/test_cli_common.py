"""The portal CLI's one mapping from errors to a stderr line and an exit code."""

from __future__ import annotations

from collections.abc import Callable

import typer
from typer.testing import CliRunner

from portal.cli._common import fail, handle_errors
from portal.errors import InvalidInputError


def _app(command: Callable[[], None]) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)
    return app


def test_a_deliberate_exit_inside_a_command_keeps_its_code() -> None:
    @handle_errors
    def refuse() -> None:
        fail("candidate is worse", 4)

    result = CliRunner().invoke(_app(refuse), ["refuse"])
    assert result.exit_code == 4
    assert "candidate is worse" in result.output
    assert "unexpected" not in result.output


def test_domain_errors_exit_with_their_own_code() -> None:
    @handle_errors
    def bad() -> None:
        raise InvalidInputError("no such organisation")

    result = CliRunner().invoke(_app(bad), ["bad"])
    assert result.exit_code == 2
    assert "no such organisation" in result.output
