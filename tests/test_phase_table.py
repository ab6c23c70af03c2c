"""The phase x result table of docs/interceptors.md is the run loop's table, cell by cell.

`cogent._run.phases.EFFECTS` decides what each `InterceptResult` kind does in each phase. The
docs show it as a Markdown table that follows the marker comment `<!-- phase-effects-table -->`,
and a legend (after `<!-- phase-effects-legend -->`) that explains each effect with the text of
`Effect`'s values. These tests parse both and compare them with the code, so the page can never
drift from what the run loop does.
"""

from __future__ import annotations

import re
from pathlib import Path

from cogent._run.phases import EFFECTS, Effect
from cogent.interceptors import Phase

PAGE = Path(__file__).resolve().parent.parent / "docs" / "interceptors.md"
TABLE_MARKER = "<!-- phase-effects-table"
LEGEND_MARKER = "<!-- phase-effects-legend"
CODE = re.compile(r"^`([^`]+)`")


def table_after(marker: str) -> list[list[str]]:
    """Return the rows (header first, separator dropped) of the first table after `marker`, as stripped cells."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(marker)), None)
    assert start is not None, f"docs/interceptors.md has no {marker} ... --> marker before its table."
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            if rows:
                break
            assert not line.strip(), f"The table must directly follow {marker} ... -->."
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
    return rows


def code_name(cell: str) -> str:
    """Return the name in a cell that starts with a `code` span (e.g. "`stop`" -> "stop")."""
    match = CODE.match(cell)
    assert match is not None, f"Expected a `code` name in the cell {cell!r}."
    return match.group(1).split("(")[0]


def documented_effects() -> dict[str, dict[str, str]]:
    """Return the page's table as {phase name: {result kind: effect name}}."""
    header, *body = table_after(TABLE_MARKER)
    assert header[0] == "phase", "The first column of the phase table is the phase."
    kinds = {i: code_name(cell) for i, cell in enumerate(header) if cell.startswith("`")}
    return {code_name(row[0]): {kind: code_name(row[i]) for i, kind in kinds.items()} for row in body}


def test_the_table_has_one_row_per_phase_and_one_column_per_result_kind() -> None:
    """Every phase has a row and every result kind that EFFECTS knows has a column, in the code's order."""
    table = documented_effects()
    assert list(table) == [phase.name for phase in Phase]
    for phase in Phase:
        assert list(table[phase.name]) == list(EFFECTS[phase]), f"The columns of the {phase.name} row."


def test_every_cell_is_the_effect_the_run_loop_applies() -> None:
    """Each cell names the `Effect` that `EFFECTS[phase][kind]` holds."""
    table = documented_effects()
    wrong = [
        f"{phase.name} x {kind}: the page says {table[phase.name][kind]}, the code does {effect.name}"
        for phase in Phase
        for kind, effect in EFFECTS[phase].items()
        if table[phase.name][kind] != effect.name
    ]
    assert not wrong, "docs/interceptors.md's phase table differs from EFFECTS:\n" + "\n".join(wrong)


def test_the_legend_explains_each_effect_with_the_codes_words() -> None:
    """The legend lists every `Effect` once, explained by the effect's own value."""
    header, *body = table_after(LEGEND_MARKER)
    assert header[:2] == ["effect", "meaning"]
    legend = {code_name(row[0]): row[1] for row in body}
    assert legend == {effect.name: effect.value for effect in Effect}
