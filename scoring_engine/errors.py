"""Engine errors and the exit codes of SPEC §6 they map to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    LICENSE = 3
    BUNDLE = 4
    PORTAL_UNREACHABLE = 5


class VigilError(Exception):
    """Base of the engine's errors; each names the exit code the CLI ends with."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class BadInputError(VigilError):
    exit_code = ExitCode.BAD_INPUT


class ModelError(VigilError):
    """A model directory or file that cannot be used (missing, wrong version, unsafe types)."""

    exit_code = ExitCode.BUNDLE
