"""Rows into docs/benchmarks.md: each goes at the end of its section's table."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def add_row(heading: str, row: str, intro: str = "", columns: str = "") -> None:
    """Append `row` to the table under `## heading`, creating the section (intro + columns) if new."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    title = f"## {heading}"
    if title not in lines:
        lines += ["", title, "", *([intro, ""] if intro else []), columns,
                  "|" + "---|" * (columns.count("|") - 1)]
        lines.append(row)
    else:
        at = lines.index(title) + 1
        end = next((i for i in range(at, len(lines)) if lines[i].startswith("## ")), len(lines))
        last = max(i for i in range(at, end) if lines[i].startswith("|"))
        lines.insert(last + 1, row)
    DOC.write_text("\n".join(lines) + "\n", encoding="utf-8")
