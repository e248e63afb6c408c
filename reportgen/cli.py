"""The `reportgen` command: a thin layer over the Python API.

Every problem the user can fix ends the run with one line on stderr and a non-zero exit;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import math
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from reportgen.analysis.ablation import ABLATION_TOKENS, AblationOptions
from reportgen.analysis.concepts import LABEL_THRESHOLD, WITHIN_THRESHOLD
from reportgen.analysis.distributions import RANK_BY_CHOICES
from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.analysis.state_sample import SAMPLE_POSITIONS
from reportgen.capture import DECODER_DTYPES, CaptureOptions
from reportgen.capture_cache import DEFAULT_LIMIT_GB, default_cache_folder
from reportgen.combine import DEFAULT_TITLE, combine_reports
from reportgen.demo import DEMO_VERSION, run_demo
from reportgen.errors import ReportgenError
from reportgen.heatmap import SCALES
from reportgen.model import RNN_TYPES
from reportgen.report import NeuronOptions, ReportConfig, build_report
from reportgen.pages import SiteOptions
from reportgen.site import check_output_folder
from reportgen.sweep import (ModelSpec, ModelsFile, build_reports, parse_model_argument,
                             read_models_file, select_models, train_sweep)
from reportgen.train import TrainConfig
from reportgen.versions import reportgen_version

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's status for a command line it cannot parse
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process killed by it
SWEPT_SETTINGS = ("dropout", "seed")  # train flags that take several values: a sweep

DESCRIPTION = """\
Turn a trained word-level LSTM language model and a text into a static HTML report of what its
neurons and states do: an expectancy heatmap of the text and more, as a folder of pages that
opens from file:// or GitHub Pages with no network.
"""

EPILOG = """\
examples:
  reportgen demo --out demo-report
      built-in corpus -> demo model -> report, no download, no GPU (about 3 minutes)
  reportgen train --data wikitext-2 --out runs/lstm --epochs 6
      train a pytorch/examples-style model
  reportgen report runs/lstm/model.pt --data wikitext-2 --out report
      report on a checkpoint; the text is wikitext-2/test.txt unless --text says otherwise
  reportgen report model.pt --data wikitext-2 --text my.txt --max-tokens 20000 --out report
  reportgen train --data wikitext-2 --out runs --dropout 0 0.2 0.4 --seed 1 2
      a sweep: one model per dropout and seed, in runs/lstm-d0.2-s1/ and so on
  reportgen report runs/*/model.pt --data wikitext-2 --out comparison
      one report per model and a comparison page; name=PATH:dropout=0.5:seed=2 gives
      settings the checkpoint lacks, and --config models.toml lists the models instead
  reportgen compare reports/d0.2 reports/d0.5 --out comparison
      the same comparison page from reports rendered separately (one job per model)

Run `reportgen COMMAND --help` for each command's options.
"""


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


def state_key(value: str) -> tuple[int, str]:
    """`L1-h` -> (1, "h"): layers are 1-based, states `h` (hidden) or `c` (cell)."""
    match = re.fullmatch(r"L([1-9][0-9]*)-([hc])", value)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a layer and state; write them as L1-h or L2-c")
    return int(match.group(1)), match.group(2)


class OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes end as every other error does: one line on stderr (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"reportgen: error: {message}; see `{self.prog} --help`\n")


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
    group.add_argument("--decoder-dtype", choices=DECODER_DTYPES, default="float32",
                       help="bfloat16 runs the output layer about twice as fast on CPUs with "
                            "bf16 units, and is used only when its log p error, checked on the "
                            "first positions, stays within 1e-3 (default: %(default)s)")
    group.add_argument("--cache", type=Path, default=default_cache_folder(), metavar="DIR",
                       help="where captures are kept between runs; the least recently used "
                            f"go past {DEFAULT_LIMIT_GB:g} GB (default: %(default)s)")
    group.add_argument("--no-cache", action="store_true",
                       help="capture into memory and keep nothing on disk; a report of several "
                            "models then analyses each model twice, once to align the units "
                            "across models and once to write its pages")


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="render the demo report on the built-in corpus",
        description="Write the built-in synthetic corpus, train the demo model on it (cached "
                    "after the first run) and render its report. No download, no GPU.",
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


def ablation_tokens(value: str) -> int:
    """0 turns the ablation off; one token has nothing to predict."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if number < 0 or number == 1:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or at least 2, not {number}")
    return number


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


def embedding_options(args: argparse.Namespace) -> EmbeddingOptions:
    """--clusters and --distance-threshold are alternatives; without either, the default K."""
    n_clusters = args.clusters
    if n_clusters is None and args.distance_threshold is None:
        n_clusters = EmbeddingOptions.n_clusters
    return EmbeddingOptions(
        max_points=args.max_points, seed=args.seed, exclude=tuple(args.exclude),
        perplexity=args.perplexity, n_clusters=n_clusters,
        distance_threshold=args.distance_threshold, min_cluster_size=args.min_cluster_size,
        cuts=tuple(args.cuts),
    )


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
                        help="rank neurons by KL(p||q) + KL(q||p) (score), or by one of them "
                             "(default: %(default)s)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="reportgen", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reportgen {reportgen_version()}",
                        help="print reportgen's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parser(commands)
    add_train_parser(commands)
    add_report_parser(commands)
    add_compare_parser(commands)
    return parser


def run_demo_command(args: argparse.Namespace) -> None:
    check_output_folder(args.out)  # before minutes of training, not after
    out = run_demo(args.out, args.work, args.seed, args.retrain, args.quiet,
                   SiteOptions(tokens_per_page=args.tokens_per_page, top_neurons=args.top_neurons,
                               expectancy_tokens=args.expectancy_tokens,
                               images=not args.no_images, all_figures=args.all_figures),
                   EmbeddingOptions(max_points=args.max_points),
                   AblationOptions(tokens=args.ablation_tokens, all_units=args.ablate_all),
                   threads=args.threads)
    print(f"report written to {out}/index.html")


def run_train_command(args: argparse.Namespace) -> None:
    from reportgen.train import train

    settings = {item.name: getattr(args, item.name) for item in fields(TrainConfig)}
    config = TrainConfig(**{**settings, "dropout": args.dropout[0], "seed": args.seed[0]})
    if len(args.dropout) * len(args.seed) > 1:
        run_train_sweep(args, config)
        return
    result = train(args.data, args.out, config, progress=False if args.quiet else None)
    print(f"model written to {result.checkpoint}")
    print(f"valid perplexity {result.valid_perplexity:.2f}, test perplexity "
          f"{result.test_perplexity:.2f} (unigram: {result.unigram_test_perplexity:.2f})")


def run_train_sweep(args: argparse.Namespace, base: TrainConfig) -> None:
    """One model per (dropout, seed) into OUT/NAME/; non-zero at the end if any failed."""
    sweep = train_sweep(args.data, args.out, base, args.dropout, args.seed, args.quiet,
                        progress=False if args.quiet else None)
    print(sweep.format_table())
    if sweep.failed:
        raise ReportgenError(
            f"{len(sweep.failed)} of {len(sweep.runs)} models failed "
            f"({', '.join(run.name for run in sweep.failed)}); the others are in {args.out}, "
            "see the table above"
        )


def report_models(args: argparse.Namespace) -> tuple[list[ModelSpec], ModelsFile | None]:
    """The models to report: from --config (selected by name), or the MODEL arguments."""
    if args.config is not None:
        models_file = read_models_file(args.config)
        return select_models(models_file, args.models), models_file
    if not args.models:
        raise ReportgenError("give the checkpoint to report on, several checkpoints to compare, "
                             "or --config FILE.toml")
    return [parse_model_argument(argument) for argument in args.models], None


def shared_input(args: argparse.Namespace, models_file: ModelsFile | None,
                 name: str) -> Path | None:
    """--data, --text or --vocabulary: the flag, else the config file's, else none."""
    given = getattr(args, name)
    return given if given is not None or models_file is None else getattr(models_file, name)


def run_report_command(args: argparse.Namespace) -> None:
    models, models_file = report_models(args)
    comparing = models_file is not None or len(models) > 1
    if not comparing and (models[0].dropout is not None or models[0].seed is not None):
        raise ReportgenError("dropout= and seed= are for comparing several models; give "
                             "more than one MODEL or --config")
    config = ReportConfig(
        checkpoint=models[0].checkpoint, out=args.out,
        data=shared_input(args, models_file, "data"), text=shared_input(args, models_file, "text"),
        vocabulary=shared_input(args, models_file, "vocabulary"),
        name=args.name or models[0].name, max_tokens=args.max_tokens,
        allow_unsafe_pickle=args.allow_unsafe_pickle, rnn_type=args.rnn_type,
        capture=CaptureOptions(dtype=args.dtype, decoder_dtype=args.decoder_dtype,
                               device=args.device, progress=False if args.quiet else None),
        cache=None if args.no_cache else args.cache,
        neurons=NeuronOptions(cell_interval=args.cell_interval, rank_by=args.rank_by,
                              label_threshold=args.label_threshold,
                              within_threshold=args.within_threshold),
        feature_files=tuple(args.features),
        ablation=AblationOptions(tokens=args.ablation_tokens, all_units=args.ablate_all),
        embedding=embedding_options(args), embed_states=() if args.no_clusters else (tuple(args.maps) if args.maps else None),
        site=SiteOptions(tokens_per_page=args.tokens_per_page, top_neurons=args.top_neurons,
                         expectancy_tokens=args.expectancy_tokens,
                         expectancy_scale=args.expectancy_scale, images=not args.no_images,
                         all_figures=args.all_figures,
                         comparison_positions=args.comparison_positions or 0),
        threads=args.threads, quiet=args.quiet,
    )
    if comparing:
        run = build_reports(models, replace(config, name=args.name))
        print(f"comparison written to {run.out}/index.html")
        if run.failures:
            raise ReportgenError(run.failure_message())
        return
    out = build_report(config)
    print(f"report written to {out}/index.html")


def run_compare_command(args: argparse.Namespace) -> None:
    combine_reports(args.reports, args.out, args.name, SiteOptions(images=not args.no_images))
    print(f"comparison written to {args.out}/index.html")


COMMANDS = {"demo": run_demo_command, "train": run_train_command, "report": run_report_command,
            "compare": run_compare_command}


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Run with at most `threads` threads in PyTorch and in the BLAS and OpenMP pools that
    NumPy, scikit-learn and openTSNE use; None leaves every pool as it is."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that it unwinds as Ctrl-C does: the temporary
    report folder is removed and an earlier report stays as it was."""


def raise_terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated


@contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` while a command runs (in the main thread only, where
    Python delivers signals), and restore the earlier handler after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    earlier = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, earlier)


@contextmanager
def quiet_numpy(quiet: bool) -> Iterator[None]:
    """Under --quiet, NumPy's floating-point warnings (an empty bin's log, say) stay off stderr;
    they never change a result, which the analyses check themselves."""
    if not quiet:
        yield
        return
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with terminate_like_interrupt(), quiet_numpy(args.quiet), limited_threads(args.threads):
            COMMANDS[args.command](args)
    except ReportgenError as error:
        if args.debug:
            raise
        print(f"reportgen: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        if args.debug:
            raise
        print(f"reportgen: error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("reportgen: interrupted; no report was written or changed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        if args.debug:
            raise
        print("reportgen: terminated; no report was written or changed", file=sys.stderr)
        return EXIT_TERMINATED
    return 0


OS_ERROR_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or write --out on another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or write --out on another disk",
    errno.EACCES: "permission denied; check the file's permissions or choose another path",
    errno.EPERM: "operation not permitted; check the file's permissions or choose another path",
    errno.EROFS: "read-only file system; write --out somewhere writable",
}


def describe_os_error(error: OSError) -> str:
    """One line for a file-system failure; an unfinished report was already thrown away."""
    where = f"{error.filename}: " if error.filename else ""
    advice = OS_ERROR_ADVICE.get(error.errno, f"{error.strerror or error}; check the path")
    return where + advice


if __name__ == "__main__":
    sys.exit(main())
