"""Proof on real text: train a WikiText-2 LSTM, render its report with default options, and
print what the thesis found, read back from the report's exports.

    python examples/wikitext2_proof.py --data ../shared/data/wikitext-2

WikiText-2's valid and test splits are enough: the model trains on valid.txt, and test.txt is
split into the validation text (its first 1,300 lines) and the analysed text (the rest). The
split folder, the model and the report go to --work (default ~/.cache/reportgen/wikitext2-proof);
a model already there is reused, so a second run only renders. Nothing is downloaded.

It prints, from data/neurons.csv, data/clusters.csv and data/tokens.csv.gz:
- for each layer, the best quote unit: the top-ranked unit labelled in_quotes, else the unit
  farthest from chance, with its AUROC, within-word AUROC and KL rank;
- for each word class, the purest cluster of that class at the opening cut, and the purest
  over every cut of clusters_by_cut.csv;
- how well each linkage and cut of layer 1's maps gathers the word classes: for each class the
  F1 of its best cluster (purity and coverage), averaged over the classes. This is how the
  default cut (40) and the page's default linkage (ward on the PCA states) were chosen;
- the largest share of words that one colour of the expectancy heatmap covers.

The defaults train the model the README's figures come from: a 2x200 LSTM, dropout 0.5, 40
epochs of the pytorch/examples recipe. That took 79 s on an H200 (`--device cuda`); on 2 CPU
cores an epoch takes about 6 minutes, so `--epochs 6` (35 minutes, valid perplexity 331 against
277) is the quick CPU variant, on which the quote unit is weaker.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from reportgen.inputs.word_classes import CLASS_NAMES, class_flags
from reportgen.render.heatmap import colour_shares

VALID_LINES = 1300  # lines of test.txt held out as the validation text


def split_folder(data: Path, folder: Path, valid_lines: int = VALID_LINES) -> Path:
    """train = valid.txt; valid = the first `valid_lines` lines of test.txt; test = the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (data / "test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "train.txt").write_text((data / "valid.txt").read_text(encoding="utf-8"),
                                      encoding="utf-8")
    (folder / "valid.txt").write_text("".join(lines[:valid_lines]), encoding="utf-8")
    (folder / "test.txt").write_text("".join(lines[valid_lines:]), encoding="utf-8")
    return folder


def run(command: list[str]) -> None:
    """`reportgen COMMAND ...` with this Python, whether or not its scripts are on PATH."""
    print("$ reportgen", " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "reportgen", *command], check=True)


def best_quote_units(neurons: pd.DataFrame) -> pd.DataFrame:
    """Per layer: the best-ranked unit labelled in_quotes, else the farthest from chance."""
    rows = []
    for layer, units in neurons.groupby("layer"):
        labelled = units[units["labels"].fillna("").str.contains(r"\bin_quotes:")]
        if len(labelled):
            best = labelled.sort_values("rank").iloc[0]
        else:
            distance = (units["auroc_in_quotes"] - 0.5).abs()
            best = units.loc[distance.idxmax()]
        rows.append({
            "layer": layer, "state": best["state"], "unit": int(best["neuron"]),
            "labelled": len(labelled) > 0, "auroc": best["auroc_in_quotes"],
            "within_word_auroc": best["within_auroc_in_quotes"],
            "kl_rank": int(best["rank"]),
            "of": int((neurons["layer"] == layer).sum() / neurons["state"].nunique()),
            "labels": best["labels"],
        })
    return pd.DataFrame(rows)


def purest_clusters(clusters: pd.DataFrame) -> pd.DataFrame:
    """For each class, the cluster with the largest share of it (of at least 20 tokens)."""
    named = clusters[(clusters["class"].notna()) & (clusters["size"] >= 20)]
    best = named.sort_values("class_share", ascending=False).groupby("class").head(1)
    columns = [c for c in ("class", "class_share", "layer", "state", "linkage", "n_clusters",
                           "cluster", "size") if c in best.columns]
    return best[columns].sort_values("class").reset_index(drop=True)


def class_f1_by_cut(points: pd.DataFrame, layer: int, state: str) -> pd.DataFrame:
    """Rows of linkage, then one column per cut: the mean over the word classes of the best
    cluster's F1 for that class, on one layer-state's map."""
    rows = points[(points["layer"] == layer) & (points["state"] == state)]
    flags = class_flags(rows["token"].tolist())
    cuts = sorted({int(c.rsplit("_k", 1)[1]) for c in rows.columns if "_k" in c})
    table = {}
    for linkage in ("single", "ward", "ward_pca"):
        table[linkage] = {}
        for k in cuts:
            labels = rows[f"cluster_{linkage}_k{k}"].to_numpy()
            scores = [best_f1(labels, flags[name]) for name in CLASS_NAMES if flags[name].sum()]
            table[linkage][k] = float(np.mean(scores))
    return pd.DataFrame(table).T


def best_f1(labels: np.ndarray, members: np.ndarray) -> float:
    """The largest F1 of any cluster for one class: 2 precision recall / (precision + recall)."""
    best = 0.0
    for cluster in np.unique(labels[members]):
        inside = labels == cluster
        hits = (inside & members).sum()
        precision, recall = hits / inside.sum(), hits / members.sum()
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="a WikiText-2 folder with valid.txt and test.txt")
    parser.add_argument("--work", type=Path,
                        default=Path.home() / ".cache" / "reportgen" / "wikitext2-proof")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--nhid", type=int, default=200)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--valid-lines", type=int, default=VALID_LINES,
                        help="lines of test.txt held out as the validation text")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="analyse only the first N tokens (CI runs the script on a small "
                             "corpus: tests/test_examples.py)")
    args = parser.parse_args()
    threads = ["--threads", str(args.threads)] if args.threads else []
    limit = ["--max-tokens", str(args.max_tokens)] if args.max_tokens else []

    corpus = split_folder(args.data, args.work / "data", args.valid_lines)
    checkpoint = args.work / "model" / "model.pt"
    if not checkpoint.exists():
        run(["train", "--data", str(corpus), "--out", str(checkpoint.parent),
             "--epochs", str(args.epochs), "--emsize", str(args.nhid), "--nhid", str(args.nhid),
             "--dropout", str(args.dropout), "--device", args.device, *threads])
    report = args.work / "report"
    run(["report", str(checkpoint), "--data", str(corpus), "--out", str(report),
         "--device", args.device, *threads, *limit])

    data = report / "data"
    neurons = pd.read_csv(data / "neurons.csv")
    pd.set_option("display.width", 160)
    print("\nThe best quote unit of each layer (data/neurons.csv):")
    print(best_quote_units(neurons).to_string(index=False, float_format="%.3f"))
    print("\nThe purest cluster of each word class at the opening cut (data/clusters.csv):")
    print(purest_clusters(pd.read_csv(data / "clusters.csv")).to_string(
        index=False, float_format="%.3f"))
    print("\n... and over every cut (data/clusters_by_cut.csv):")
    print(purest_clusters(pd.read_csv(data / "clusters_by_cut.csv")).to_string(
        index=False, float_format="%.3f"))
    points = pd.read_csv(data / "points.csv", keep_default_na=False, na_values=[])
    for state in ("h", "c"):
        print(f"\nL1-{state}: mean over the word classes of their best cluster's F1, by cut:")
        print(class_f1_by_cut(points, 1, state).to_string(float_format="%.2f"))
    tokens = pd.read_csv(data / "tokens.csv.gz", keep_default_na=False, na_values=[], dtype=str)
    prob_next = pd.to_numeric(tokens["prob_next"], errors="coerce").to_numpy()  # "" at the end
    probs = np.concatenate([[np.nan], prob_next[:-1]])  # p of each token; the first has none
    for scale in ("log", "linear"):
        shares = colour_shares(probs, scale)
        print(f"\nExpectancy, {scale} scale: the largest share of words in one tenth of the "
              f"colours is {shares.max():.1%} (shares {np.round(shares, 3).tolist()})")
    print(f"\nReport: {report}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
