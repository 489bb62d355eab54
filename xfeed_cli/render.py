"""Tables that fit the terminal: at 80 columns every row stays one line.

Columns carry a drop order; when the natural widths do not fit, optional columns go first (in
that order), then the flexible column (the text) is cut with an ellipsis. Pipes and files get
the console's fixed wide layout, so nothing is dropped there.
"""

from __future__ import annotations

import dataclasses

from rich.cells import cell_len
from rich.table import Table


@dataclasses.dataclass(frozen=True)
class Col:
    header: str
    justify: str = "left"
    drop: int | None = None  # None: always shown; else dropped in increasing order when narrow
    flex: bool = False  # takes the remaining width, cut with an ellipsis
    min_width: int = 12  # a flexible column never gets narrower than this


def fitted_table(title: str, cols: list[Col], rows: list[list[str]], width: int) -> Table:
    """A rich Table of `rows` with the columns that fit `width` (see the module docstring)."""
    natural = [max([cell_len(c.header), *(cell_len(r[i]) for r in rows)], default=0)
               for i, c in enumerate(cols)]  # fmt: skip
    keep = list(range(len(cols)))

    def needed(idx: list[int]) -> int:
        # borders and one space of padding each side: 3 per column + 1
        fixed = sum(cols[i].min_width if cols[i].flex else natural[i] for i in idx)
        return fixed + 3 * len(idx) + 1

    for i in sorted((i for i, c in enumerate(cols) if c.drop is not None),
                    key=lambda i: cols[i].drop):  # fmt: skip
        if needed(keep) <= width:
            break
        keep.remove(i)
    spare = max(0, width - needed(keep))
    table = Table(title=title, title_justify="left")
    for i in keep:
        c = cols[i]
        size = min(natural[i], c.min_width + spare) if c.flex else natural[i]
        table.add_column(c.header, justify=c.justify, no_wrap=True, overflow="ellipsis",
                         width=max(size, c.min_width if c.flex else 1))  # fmt: skip
    for r in rows:
        table.add_row(*(r[i] for i in keep))
    return table
