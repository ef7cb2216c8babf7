"""The error types the CLI maps to exit codes (see DESIGN.md §3)."""

from __future__ import annotations


class DlcliError(Exception):
    """An expected failure: printed as `dlcli: error: <message>` plus an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class RecipeError(DlcliError):
    """A recipe or command-line usage error (exit 2)."""

    exit_code = 2


class DataError(DlcliError):
    """Input data that cannot be read or parsed (exit 1)."""


class CheckpointError(DlcliError):
    """A checkpoint that is missing, damaged, unsafe or of an unknown format (exit 1)."""


class TrainingError(DlcliError):
    """Training that cannot go on, e.g. a non-finite loss (exit 1)."""
