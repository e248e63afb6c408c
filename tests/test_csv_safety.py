"""CSV exports open safely in spreadsheets: text cells that would run as formulas are quoted."""

from __future__ import annotations

import csv
import io

import pandas as pd

from reportgen.csv_safety import neutralise_formulas


def test_text_cells_that_start_a_formula_are_quoted_and_numbers_stay_numbers() -> None:
    frame = pd.DataFrame({
        "token": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@-@", "\tcmd", "\rcmd", "the", "a=b",
                  "'quoted", ""],
        "count": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "kl": [-0.5, 0.25, -1e-3, 0.0, -2.0, 1.0, 0.5, -0.1, 0.2, 0.3],
        "flag": [True, False] * 5,
    })
    safe = neutralise_formulas(frame)
    assert safe["token"].tolist() == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@-@", "'\tcmd",
                                      "'\rcmd", "the", "a=b", "'quoted", ""]
    pd.testing.assert_frame_equal(safe.drop(columns="token"), frame.drop(columns="token"))
    assert frame["token"][0].startswith("="), "the input frame is left as it was"
    written = io.StringIO()
    safe.to_csv(written, index=False)
    rows = list(csv.reader(io.StringIO(written.getvalue(), newline="")))
    assert rows[1][0].startswith("'=HYPERLINK") and rows[1][2] == "-0.5"


def test_string_dtype_columns_and_missing_values() -> None:
    frame = pd.DataFrame({"word": pd.array(["-x", None, "y"], dtype="string"),
                          "mixed": ["=1", None, 3]})
    safe = neutralise_formulas(frame)
    assert safe["word"].tolist()[0] == "'-x" and pd.isna(safe["word"].tolist()[1])
    assert safe["mixed"].tolist() == ["'=1", None, 3]
