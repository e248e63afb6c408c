"""The `reportgen` command's arguments: the flags of each command, with their help, and the
types that check each value as it is parsed.

Apart from `cli.py`, which runs the commands, so that what the user can type, and what
`--help` teaches about it, reads in one place; every value is checked here, so that a bad
flag ends with argparse's one line before anything runs.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

from reportgen.analysis.ablation import ABLATION_TOKENS
from reportgen.analysis.concepts import LABEL_THRESHOLD, WITHIN_THRESHOLD, WORD_SHARE
from reportgen.analysis.divergences import KL_SMOOTHING, RANK_BY_CHOICES
from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.analysis.state_sample import SAMPLE_POSITIONS
from reportgen.capture.cache import DEFAULT_LIMIT_GB, default_cache_folder
from reportgen.capture.core import StateKey, parse_state_name
from reportgen.inputs.agreement_suites import ITEMS_PER_CONDITION
from reportgen.inputs.model import RNN_TYPES
from reportgen.render.heatmap import SCALES
from reportgen.render.pages import SiteOptions
from reportgen.runs.combine import DEFAULT_TITLE
from reportgen.runs.demo import DEMO_TIME, DEMO_VERSION
from reportgen.training.train import TrainConfig

SWEPT_SETTINGS = ("dropout", "seed")  # train flags that take several values: a sweep


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def count_or_all(value: str) -> int | None:
    """A positive whole number, or "all" (None): no limit."""
    return None if value.strip().lower() == "all" else positive_int(value)


def finite_float(value: str) -> float:
    """A float option: NaN and infinities pass every `x < limit` check and then end in a
    traceback or a silent NaN, so they are refused here."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {value!r}")
    return number


SEED_LIMIT = 2**32 - 1  # NumPy's seeds; torch.manual_seed takes these too


def seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not 0 <= number <= SEED_LIMIT:
        shown = repr(value) if number is None else number
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 0 to {SEED_LIMIT}, not {shown}")
    return number


def state_key(value: str) -> StateKey:
    """`L1-h` -> (1, "h"): layers are 1-based, states `h` (hidden) or `c` (cell)."""
    try:
        return parse_state_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help="CPU threads for PyTorch, BLAS and t-SNE (default: every core this "
                             "process may use); on a machine busy with other work, fewer threads "
                             "can be much faster")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when something fails")


def add_images_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-images", action="store_true",
                        help="skip the PNG and SVG figures under img/, which take a few seconds")
    parser.add_argument("--all-figures", action="store_true",
                        help="figures of every top neuron's page too (histogram, AUROC, "
                             "excerpt), not only of the main charts; they are most of img/")


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "capture", "how the model is run over the text; the capture is cached on disk, so a "
                   "second report of the same model, text and --dtype skips it")
    group.add_argument("--device", default="auto",
                       help="auto (a CUDA GPU when there is one), cpu, cuda or cuda:N "
                            "(default: %(default)s)")
    group.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                       help="how the states are stored; float16 halves the cache and memory "
                            "(default: %(default)s)")
    group.add_argument("--streams", type=int, default=0, metavar="B",
                       help="run the text as B parallel streams, each checked against the one "
                            "before it at its start; 1 runs one stream, 0 chooses B from the "
                            "model's width and the text's length (default: %(default)s)")
    group.add_argument("--cache", type=Path, default=default_cache_folder(), metavar="DIR",
                       help="where captures are kept between runs; the least recently used "
                            f"go past {DEFAULT_LIMIT_GB:g} GB (default: %(default)s)")
    group.add_argument("--no-cache", action="store_true",
                       help="keep nothing on disk after the run: one model is captured into "
                            "memory, several into a temporary folder the run removes")


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="render the demo report on the built-in corpus",
        description="Write the built-in synthetic corpus, train the demo model on it (cached "
                    "after the first run) and render its report. No download, no GPU; "
                    f"{DEMO_TIME}.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-report"),
                        help="report folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=0, help="corpus and training seed (default: 0)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the corpus and model are kept between runs "
                             f"(default: ~/.cache/reportgen/demo-v{DEMO_VERSION}-seedN)")
    parser.add_argument("--retrain", action="store_true",
                        help="train again even when the work folder has the model")
    add_layout_arguments(parser)
    parser.add_argument("--max-points", type=positive_int, default=EmbeddingOptions.max_points,
                        metavar="N",
                        help="token positions sampled for each t-SNE map (default: %(default)s)")
    add_ablation_arguments(parser)
    add_images_flag(parser)
    add_common(parser)


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    """The page options that the overview's notes name: how many neuron and text pages."""
    parser.add_argument("--tokens-per-page", type=positive_int, default=SiteOptions.tokens_per_page,
                        help="tokens per expectancy page (default: %(default)s)")
    parser.add_argument("--expectancy-tokens", type=count_or_all, metavar="N|all",
                        default=SiteOptions.expectancy_tokens,
                        help="show the text's first N tokens in the expectancy pages, which take "
                             "about 100 bytes a token; data/tokens.csv.gz keeps every token "
                             "(default: %(default)s; all shows the whole text)")
    parser.add_argument("--top-neurons", type=positive_int, default=SiteOptions.top_neurons,
                        help="neuron pages per layer and state by KL rank (default: "
                             "%(default)s); the units the concepts page lists get pages too")


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train a word-level language model as pytorch/examples does",
        description="Train an RNNModel on DIR/train.txt with the pytorch/examples "
                    "word_language_model recipe and flag names. Writes OUT/model.pt (weights, "
                    "hyperparameters and vocabulary), OUT/vocab.txt and OUT/train_log.json, and "
                    "prints valid and test perplexity against a unigram baseline.",
    )
    parser.add_argument("--data", type=Path, required=True,
                        help="folder with train.txt, valid.txt and test.txt")
    parser.add_argument("--out", type=Path, required=True, help="folder for the model")
    defaults = TrainConfig()
    helps = {
        "model": "LSTM, GRU, RNN_TANH or RNN_RELU", "emsize": "size of word embeddings",
        "nhid": "hidden units per layer", "nlayers": "number of layers",
        "lr": "initial learning rate (plain SGD)", "clip": "gradient clipping",
        "epochs": "upper epoch limit", "batch_size": "batch size", "bptt": "sequence length",
        "dropout": "dropout applied to layers (0 = none)", "seed": "random seed",
        "device": "auto (a CUDA GPU when there is one), cpu or cuda", "max_train_tokens": "train on the first N tokens only",
    }
    for item in fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        default = getattr(defaults, item.name)
        if item.name == "tied":
            parser.add_argument(flag, action="store_true",
                                help="tie the word embedding and softmax weights")
            continue
        kind = type(default) if default is not None else int
        kind = {float: finite_float}.get(kind, kind)
        if item.name == "seed":
            kind = seed
        if item.name in SWEPT_SETTINGS:
            parser.add_argument(flag, type=kind, nargs="+", default=[default],
                                metavar=item.name.upper(),
                                help=f"{helps[item.name]} (default: {default}); several values "
                                     "train one model per combination into OUT/NAME/")
            continue
        parser.add_argument(flag, type=kind, default=default,
                            help=f"{helps[item.name]} (default: {default})")
    add_common(parser)


def add_concept_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the concept labels and the concepts page (concepts.html)."""
    group = parser.add_argument_group(
        "concept labels", "each unit's AUROC for each token feature, and the labels that pass; "
                          "the built-in features are quotes, parentheses, next token a number or "
                          "<eos>, headings and the closed word classes (is_pronoun, is_be, ...)")
    group.add_argument("--features", type=Path, nargs="+", action="extend", default=[],
                       metavar="FILE",
                       help="your own features: a .toml file of word lists and regular "
                            "expressions, or a .csv annotation with one 0/1 row per token of the "
                            "text (an earlier report's data/tokens.csv.gz plus a column will do)")
    group.add_argument("--label-threshold", type=finite_float, default=LABEL_THRESHOLD, metavar="D",
                       help="a label needs |AUROC - 0.5| >= D (default: %(default)s)")
    group.add_argument("--within-threshold", type=finite_float, default=WITHIN_THRESHOLD, metavar="D",
                       help="and, for a feature the current word does not decide, "
                            "|within-word AUROC - 0.5| >= D on the same side, which shows memory "
                            "rather than a reaction to the word (default: %(default)s)")
    group.add_argument("--word-label-share", type=finite_float, default=WORD_SHARE, metavar="S",
                       help="a feature the current word decides (a word class) labels a unit only "
                            "among the share S of its layer's units farthest from chance "
                            "(default: %(default)s)")


def ablation_tokens(value: str) -> int:
    """0 turns the ablation off; one token has nothing to predict."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 0 or number == 1:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or at least 2, not {number}")
    return number


def add_agreement_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the Agreement page: the suites and the number-unit finder (docs/agreement.md)."""
    group = parser.add_argument_group(
        "agreement", "subject-verb number agreement: is log p(correct verb) > log p(wrong verb) "
                     "after a prefix? A built-in suite from Lakretz et al.'s templates, your "
                     "own files, and the units whose ablation breaks agreement")
    group.add_argument("--agreement", type=Path, nargs="+", action="extend", default=[],
                       metavar="FILE",
                       help="your own suites: NA-task files (sentence TAB condition TAB "
                            "correct|wrong TAB id) or Linzen/Gulordava .text files with their "
                            ".gold beside them; items with a word outside the vocabulary are "
                            "skipped and counted")
    group.add_argument("--agreement-items", type=positive_int, default=ITEMS_PER_CONDITION,
                       metavar="N",
                       help="built-in items per template and condition (default: %(default)s)")
    group.add_argument("--no-agreement", action="store_true",
                       help="skip the agreement suites and the number-unit finder")


def add_ablation_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the mean-ablation shown on each unit page."""
    group = parser.add_argument_group(
        "ablation", "each paged unit is held at its mean over the text while the model reads "
                    "the text again, and the rise in loss says how much the prediction needs it")
    group.add_argument("--ablation-tokens", type=ablation_tokens, default=ABLATION_TOKENS,
                       metavar="N",
                       help="run the ablation over the first N tokens: its cost grows with N "
                            "times the units ablated, and its per-feature figures get steadier "
                            "with N; 0 turns it off (default: %(default)s)")
    group.add_argument("--ablate-all", action="store_true",
                       help="ablate every unit of every layer and state, not only those that "
                            "get a page, so that neurons.csv has ablation figures for all; on a "
                            "2x650 LSTM that is 2,600 units, see the README for the cost")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the t-SNE maps and their clusters (clusters.html); checked by EmbeddingOptions."""
    defaults = EmbeddingOptions()
    group = parser.add_argument_group("t-SNE maps and clusters")
    group.add_argument("--max-points", type=int, default=defaults.max_points, metavar="N",
                       help="token positions sampled for each map (default: %(default)s)")
    group.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="WORD",
                       help="leave these tokens out of the maps, e.g. --exclude '<eos>' the")
    group.add_argument("--clusters", type=int, metavar="K",
                       help=f"the cut the page opens at, in clusters per map and linkage "
                            f"(default: {defaults.n_clusters}); the page's selector also offers "
                            f"{', '.join(map(str, defaults.cuts))}")
    group.add_argument("--cuts", type=positive_int, nargs="+", metavar="K",
                       default=list(defaults.cuts),
                       help="the numbers of clusters every tree is also cut at, for the "
                            "page's selector and clusters_by_cut.csv (default: %(default)s)")
    group.add_argument("--distance-threshold", type=finite_float, metavar="D",
                       help="cut the cluster trees at this height instead of into K clusters")
    group.add_argument("--min-cluster-size", type=int, default=defaults.min_cluster_size,
                       metavar="N",
                       help="single linkage only splits off clusters of at least this many "
                            "points (default: %(default)s; 1 is the classical cut)")
    group.add_argument("--perplexity", type=finite_float, default=defaults.perplexity, metavar="P",
                       help="t-SNE perplexity (default: %(default)s)")
    group.add_argument("--seed", type=seed, default=defaults.seed,
                       help="seed of the sample and of t-SNE (default: %(default)s)")
    group.add_argument("--maps", nargs="+", type=state_key, metavar="STATE",
                       help="the layers and states to map, named as L1-h, L2-c "
                            "(default: every layer and state)")
    group.add_argument("--no-clusters", action="store_true",
                       help="skip the maps and the clusters page, which take most of the time")


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="render the report of a trained model",
        description="Load CHECKPOINT (a pytorch/examples model.pt pickle, a state dict or a "
                    "reportgen checkpoint), read the text with the model's vocabulary, capture "
                    "every layer's states and render the report folder. Several MODELs, or "
                    "--config, compare models read on the same text: OUT/NAME/ is each one's "
                    "report and OUT/index.html compares them against dropout.",
    )
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="the model file; several compare the models: each is "
                             "[NAME=]PATH[:dropout=X][:seed=N], reported in OUT/NAME/ with "
                             "OUT/index.html comparing them. With --config: names of the "
                             "file's models to report (default: all)")
    parser.add_argument("--config", type=Path, metavar="FILE.toml",
                        help="a TOML file listing the models to compare ([[models]] tables "
                             "with checkpoint, and optionally name, dropout and seed) and "
                             "optionally their shared data, text and vocabulary")
    parser.add_argument("--data", type=Path,
                        help="the folder the model was trained from: its train, valid and test "
                             "files rebuild the vocabulary exactly as data.Corpus does")
    parser.add_argument("--text", type=Path,
                        help="the text to analyse (default: DATA/test.txt)")
    parser.add_argument("--vocabulary", type=Path,
                        help="a word-per-line vocabulary file, instead of --data")
    parser.add_argument("--out", type=Path, required=True,
                        help="report folder; replaced atomically when the run succeeds")
    parser.add_argument("--name", help="title of the report (default: the checkpoint's name; "
                                       "for several models, of the comparison page)")
    parser.add_argument("--max-tokens", type=positive_int,
                        help="analyse only the first N tokens of the text")
    add_layout_arguments(parser)
    parser.add_argument("--expectancy-scale", choices=SCALES, default=SiteOptions.expectancy_scale,
                        help="colour p(word) by log10 p, which spreads a real model's words over "
                             "the colours, or by p itself as the thesis did (default: %(default)s)")
    parser.add_argument("--cell-interval", type=finite_float, metavar="A",
                        help="bin cell states over [-A, A] (default: the 99.9th percentile of "
                             "|c| of each layer, rounded up to 0.01)")
    parser.add_argument("--rank-by", choices=RANK_BY_CHOICES, default="score",
                        help="rank neurons by KL(p||q) + KL(q||p) (score), by one of them, or "
                             "by Jensen-Shannon (js) (default: %(default)s)")
    parser.add_argument("--kl-smoothing", type=finite_float, default=KL_SMOOTHING, metavar="K",
                        help="add K to every bin's count, each neuron's and the average's, "
                             "before the divergences (default: %(default)s)")
    parser.add_argument("--comparison-positions", type=positive_int, metavar="N",
                        help="keep the states at N positions of the text (seeded, the same for "
                             f"every model) in data/comparable/, so that `reportgen compare` "
                             f"can align this model's units with other models' later, e.g. "
                             f"{SAMPLE_POSITIONS}; they take N x units x 4 states x 2 bytes, "
                             f"21 MB for a 2x650 model at {SAMPLE_POSITIONS}, and models "
                             "compare only at the same N (default: none for one model, "
                             f"{SAMPLE_POSITIONS} for several, whose comparison uses them)")
    add_concept_arguments(parser)
    add_ablation_arguments(parser)
    add_agreement_arguments(parser)
    add_cluster_arguments(parser)
    add_capture_arguments(parser)
    parser.add_argument("--rnn-type", choices=RNN_TYPES,
                        help="the model's --model, for a state dict, whose weights cannot tell "
                             "RNN_TANH from RNN_RELU (needed for those two; checked otherwise)")
    parser.add_argument("--allow-unsafe-pickle", action="store_true",
                        help="DANGEROUS: unpickle the checkpoint without the class allowlist, "
                             "which runs any code it contains; only for files you trust")
    add_images_flag(parser)
    add_common(parser)


def add_compare_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare", help="compare finished reports, without their models",
        description="Combine report folders that `reportgen report` wrote for models read on "
                    "the same text (for example one cluster job per model) into one site: "
                    "OUT/NAME/ is a copy of each report, OUT/index.html compares them against "
                    "dropout, matches their units one to one (Hungarian algorithm on |r|) and "
                    "gives the linear CKA of their layers, from the states each report keeps "
                    "at the same sampled positions in data/comparable/. The page equals the "
                    "one a multi-model `reportgen report` of the same models writes.",
    )
    parser.add_argument("reports", nargs="+", metavar="REPORT_DIR",
                        help="report folders, at least two, each [NAME=]DIR; NAME replaces "
                             "the model's own name (default: the name its report was given)")
    parser.add_argument("--out", type=Path, required=True,
                        help="comparison folder; replaced atomically when the run succeeds")
    parser.add_argument("--name", help=f"title of the comparison page (default: {DEFAULT_TITLE})")
    parser.add_argument("--no-images", action="store_true",
                        help="skip the PNG and SVG figures of the comparison page under img/")
    add_common(parser)


def add_cache_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "cache", help="list or clear the capture cache",
        description="The capture cache keeps each model's states on a text, so that a second "
                    "report skips the model. `list` shows its entries with their sizes, models, "
                    "texts and when they were last used; `clear` removes entries. Only folders "
                    "reportgen marked as its own are listed or removed.",
    )
    actions = parser.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    for name, what in (("list", "show the entries"), ("clear", "remove entries")):
        action = actions.add_parser(name, help=what, description=what)
        action.add_argument("--cache", type=Path, default=default_cache_folder(), metavar="DIR",
                            help="the cache folder (default: %(default)s)")
        if name == "clear":
            action.add_argument("--older-than", type=finite_float, metavar="DAYS",
                                help="remove only entries last used more than DAYS ago "
                                     "(default: every entry)")
        add_common(action)
