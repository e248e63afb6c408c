"""CSV formula injection: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
is run as a formula by spreadsheet programs (`=HYPERLINK(...)` and worse), and corpus text is
anyone's text. As OWASP recommends, such a cell of a text column gets a leading single quote,
which spreadsheets show as text. Numeric columns are left alone: -0.25 must stay a number.

WikiText's own tokens start so too (`@-@`, `@,@`, `@.@`, the `=` of headings), so the exports'
text columns hold `'@-@` and `'=`; tools that read the CSV back should strip one leading quote
from a cell that starts `'` followed by one of those characters.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# gzip for pandas.to_csv with the header's time set to 0, so a gzipped export's bytes are the
# same from run to run
GZIP_SAME_BYTES = {"method": "gzip", "mtime": 0}


def neutralise_cell(value: object) -> object:
    """`value` with a leading `'` when it is a string a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text (object or string dtype) columns are safe to open in a
    spreadsheet; numeric, boolean and other columns are unchanged."""
    safe = frame.copy()
    for column in safe.columns:
        series = safe[column]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            safe[column] = series.map(neutralise_cell)
    return safe
