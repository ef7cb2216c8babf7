"""Edits of docs/benchmarks.md: rows at the end of a section's table, or whole sections."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@contextmanager
def edited_doc() -> Iterator[list[str]]:
    """The document's lines, to change in place; written back on exit. An exclusive lock keeps two
    benchmarks finishing at once from losing each other's rows."""
    with open(DOC, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        lines = fh.read().splitlines()
        yield lines
        fh.seek(0)
        fh.write("\n".join(lines).rstrip("\n") + "\n")
        fh.truncate()


def add_row(heading: str, row: str, intro: str = "", columns: str = "") -> None:
    """Append `row` to the table under `## heading`, creating the section (intro + columns) if new."""
    title = f"## {heading}"
    with edited_doc() as lines:
        if title not in lines:
            lines += ["", title, "", *([intro, ""] if intro else []), columns,
                      "|" + "---|" * (columns.count("|") - 1)]
            lines.append(row)
        else:
            at = lines.index(title) + 1
            end = next((i for i in range(at, len(lines)) if lines[i].startswith("## ")), len(lines))
            last = max(i for i in range(at, end) if lines[i].startswith("|"))
            lines.insert(last + 1, row)


def replace_section(lines: list[str]) -> None:
    """Put `lines` (a `## ` heading first) in place of that section, or at the end when it is new."""
    with edited_doc() as doc:
        if lines[0] in doc:
            at = doc.index(lines[0])
            end = next((i for i in range(at + 1, len(doc)) if doc[i].startswith("## ")), len(doc))
            doc[at:end] = [*lines, *([""] if end < len(doc) else [])]
        else:
            doc += ["", *lines]
