"""--features FILE: word lists and regular expressions in TOML, per-token annotations in CSV."""

import gzip

import numpy as np
import pytest

from reportgen.errors import ReportgenError
from reportgen.inputs.feature_files import read_feature_file
from reportgen.inputs.features import token_features

TOKENS = ["The", "red", "car", "of", "1998", "<eos>", "Red", "sky", "<eos>"]


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_word_lists_and_regular_expressions(tmp_path):
    path = write(tmp_path, "mine.toml", """
[is_colour]
words = ["red", "blue"]
case_sensitive = false
description = "colour words"

[is_year]
regex = "1[5-9][0-9][0-9]|20[0-9][0-9]"
""")
    features = read_feature_file(path)
    assert features.names == ["is_colour", "is_year"]
    values = features.evaluate(TOKENS)
    np.testing.assert_array_equal(values["is_colour"], [0, 1, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(values["is_year"], [0, 0, 0, 0, 1, 0, 0, 0, 0])
    merged = token_features(TOKENS, values, features.descriptions())
    assert merged.description("is_colour") == "colour words"


def test_an_annotation_aligned_with_the_text(tmp_path):
    rows = "\n".join(f"{t},{token},{int(token == '<eos>')}" for t, token in enumerate(TOKENS))
    path = write(tmp_path, "track.csv", "position,token,line_end\n" + rows + "\n")
    values = read_feature_file(path).evaluate(TOKENS)
    np.testing.assert_array_equal(values["line_end"], [t == "<eos>" for t in TOKENS])
    assert read_feature_file(path).evaluate(TOKENS[:4])["line_end"].tolist() == [0, 0, 0, 0]


def test_tokens_csv_of_a_report_is_a_template(tmp_path):
    """A column added to an earlier report's tokens.csv comes back as a feature; its other
    columns (0/1 features) come back too, so rename or drop the built-in ones."""
    rows = "\n".join(f"{t},{token},{int(t % 2)}" for t, token in enumerate(TOKENS))
    path = write(tmp_path, "tokens.csv", "position,token,odd\n" + rows + "\n")
    assert read_feature_file(path).names == ["odd"]


@pytest.mark.parametrize("name, text, message", [
    ("a.toml", "[is_x]\nwords = 'red'\n", "must be a list of strings"),
    ("a.toml", "[is_x]\nregex = '('\n", "does not compile"),
    ("a.toml", "[is_x]\n", "needs words or a regex"),
    ("a.toml", "[Bad-Name]\nwords = ['a']\n", "feature name"),
    ("a.toml", "[in_quotes]\nwords = ['a']\n", "is built in"),
    ("a.toml", "[is_x]\nword = ['a']\n", "unknown key"),
    ("a.toml", "not toml = = =\n", "not valid TOML"),
    ("a.toml", "x = " + "[" * 2000 + "]" * 2000 + "\n", "not valid TOML"),
    ("a.toml", "", "defines no feature"),
    ("a.toml", b"[is_x]\nwords = ['\xe9']\n", "not UTF-8"),
    ("a.txt", "x\n", "give a .toml file"),
    ("a.csv", "", "empty"),
    ("a.csv", "flag\n2\n", "use 0 or 1"),
    ("a.csv", "flag,flag\n0,1\n", "appears twice"),
    ("a.csv", "position,flag\n5,1\n", "position"),
    ("a.csv", "flag\n0,1\n", "cells where the header has"),
])
def test_a_bad_file_is_one_clear_error(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(ReportgenError, match=message):
        read_feature_file(path, reserved=["in_quotes"])


def test_an_annotation_for_another_text_is_refused(tmp_path):
    too_short = write(tmp_path, "short.csv", "flag\n1\n0\n")
    with pytest.raises(ReportgenError, match="has 2 rows but the text has 9 tokens"):
        read_feature_file(too_short).evaluate(TOKENS)
    other = write(tmp_path, "other.csv", "token,flag\n" + "\n".join(f"x,{0}" for _ in TOKENS))
    with pytest.raises(ReportgenError, match="row 2 has token 'x' where the text has 'The'"):
        read_feature_file(other).evaluate(TOKENS)


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ReportgenError, match="no such file"):
        read_feature_file(tmp_path / "nope.toml")


def test_features_flag_takes_part_in_labels_concepts_and_clusters(tiny_model, tiny_corpus,
                                                                   tmp_path):
    """Title words of the built-in corpus occur only inside quotes: as a feature of the user's
    they get a column, a section of the concepts page, and name the clusters they fill."""
    import pandas as pd

    from reportgen.cli.main import main
    from reportgen.training.synthetic_grammar import WORD_CLASSES

    toml = write(tmp_path, "mine.toml", "[is_title]\nwords = [%s]\ndescription = 'titles'\n"
                 % ", ".join(f'"{word}"' for word in WORD_CLASSES["title"]))
    out = tmp_path / "report"
    assert main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--max-tokens", "1200", "--features", str(toml), "--maps", "L1-h",
                 "--max-points", "400", "--no-images", "--quiet"]) == 0
    tokens = pd.read_csv(out / "data" / "tokens.csv.gz", keep_default_na=False)
    assert tokens["is_title"].tolist() == [int(t in WORD_CLASSES["title"]) for t in tokens["token"]]
    neurons = pd.read_csv(out / "data" / "neurons.csv")
    assert {"auroc_is_title", "within_auroc_is_title"} <= set(neurons.columns)
    assert neurons["within_auroc_is_title"].isna().all()  # the word decides it
    concepts = (out / "concepts.html").read_text(encoding="utf-8")
    assert 'id="is_title"' in concepts and "titles" in concepts
    points = pd.read_csv(out / "data" / "points.csv", keep_default_na=False)
    clusters = pd.read_csv(out / "data" / "clusters_by_cut.csv", keep_default_na=False)
    for row in clusters[clusters["class"] == "is_title"].itertuples():
        members = points[points[f"cluster_{row.linkage}_k{row.n_clusters}"] == row.cluster]
        share = members["token"].isin(WORD_CLASSES["title"]).mean()
        assert share == pytest.approx(float(row.class_share), abs=1e-6)  # "" where no class


def test_a_bad_features_file_stops_the_run_before_the_model_runs(tiny_model, tiny_corpus,
                                                                  tmp_path, capsys):
    from reportgen.cli.main import main

    bad = write(tmp_path, "bad.toml", "[is_x]\nregex = '('\n")
    out = tmp_path / "report"
    code = main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--features", str(bad), "--no-cache", "--quiet"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1 and error.startswith("reportgen: error: ")
    assert "does not compile" in error and not out.exists()
    annotation = write(tmp_path, "short.csv", "flag\n1\n0\n")
    code = main(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", str(out),
                 "--features", str(annotation), "--no-cache", "--quiet"])
    error = capsys.readouterr().err
    assert code == 1 and "rows but the text has" in error and not out.exists()


def test_a_gzipped_annotation_reads_as_the_plain_one(tmp_path, monkeypatch):
    """data/tokens.csv.gz of a report is gzipped: given back with a column added, it reads as
    the same file unpacked; a file that is not gzip, or unpacks past the limit, is one error."""
    rows = "\n".join(f"{t},{token},{int(t % 2)}" for t, token in enumerate(TOKENS))
    text = "position,token,odd\n" + rows + "\n"
    packed = tmp_path / "tokens.csv.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    plain = write(tmp_path, "tokens.csv", text)
    assert read_feature_file(packed).names == ["odd"]
    np.testing.assert_array_equal(read_feature_file(packed).evaluate(TOKENS)["odd"],
                                  read_feature_file(plain).evaluate(TOKENS)["odd"])
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"position,token,odd\n0,a,1\n")
    with pytest.raises(ReportgenError, match="not a readable gzip file"):
        read_feature_file(broken)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"position,token,odd\n" + b"0" * 5000))
    monkeypatch.setattr("reportgen.inputs.feature_files.MAX_FILE_BYTES", 1000)
    assert bomb.stat().st_size < 1000
    with pytest.raises(ReportgenError, match="unpacked"):
        read_feature_file(bomb)


def test_an_earlier_reports_tokens_csv_fits_although_its_cells_are_quoted(tmp_path):
    """The exports quote cells a spreadsheet would run (`=` becomes `'=`); an annotation made
    from them still fits the text."""
    from reportgen.csv_safety import neutralise_cell

    tokens = ["=", "Title", "=", "<eos>", "-", "@-@"]
    rows = "\n".join(f"{t},{neutralise_cell(token)},{t % 2}" for t, token in enumerate(tokens))
    path = write(tmp_path, "tokens.csv", "position,token,odd\n" + rows + "\n")
    assert read_feature_file(path).evaluate(tokens)["odd"].tolist() == [0, 1, 0, 1, 0, 1]
