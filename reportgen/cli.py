"""The `reportgen` command: a thin layer over the Python API.

Every problem the user can fix ends the run with one line on stderr and a non-zero exit;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from reportgen.capture import CaptureOptions
from reportgen.errors import ReportgenError
from reportgen.report import ReportConfig, build_report
from reportgen.pages import SiteOptions
from reportgen.train import TrainConfig

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

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

Run `reportgen COMMAND --help` for each command's options.
"""


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when something fails")


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="render the demo report on the built-in corpus",
        description="Write the built-in synthetic corpus, train the demo model on it (cached "
                    "after the first run) and render its report. No download, no GPU.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-report"),
                        help="report folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="corpus and training seed (default: 0)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the corpus and model are kept between runs "
                             "(default: ~/.cache/reportgen/demo-v1-seedN)")
    parser.add_argument("--retrain", action="store_true",
                        help="train again even when the work folder has the model")
    add_common(parser)


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
        "device": "cpu or cuda", "max_train_tokens": "train on the first N tokens only",
    }
    for item in fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        default = getattr(defaults, item.name)
        if item.name == "tied":
            parser.add_argument(flag, action="store_true",
                                help="tie the word embedding and softmax weights")
            continue
        kind = type(default) if default is not None else int
        parser.add_argument(flag, type=kind, default=default,
                            help=f"{helps[item.name]} (default: {default})")
    add_common(parser)


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="render the report of a trained model",
        description="Load CHECKPOINT (a pytorch/examples model.pt pickle, a state dict or a "
                    "reportgen checkpoint), read the text with the model's vocabulary, capture "
                    "every layer's states and render the report folder.",
    )
    parser.add_argument("checkpoint", type=Path, help="the model file")
    parser.add_argument("--data", type=Path,
                        help="the folder the model was trained from: its train, valid and test "
                             "files rebuild the vocabulary exactly as data.Corpus does")
    parser.add_argument("--text", type=Path,
                        help="the text to analyse (default: DATA/test.txt)")
    parser.add_argument("--vocabulary", type=Path,
                        help="a word-per-line vocabulary file, instead of --data")
    parser.add_argument("--out", type=Path, required=True,
                        help="report folder; replaced atomically when the run succeeds")
    parser.add_argument("--name", help="title of the report (default: the checkpoint's name)")
    parser.add_argument("--max-tokens", type=positive_int,
                        help="analyse only the first N tokens of the text")
    parser.add_argument("--tokens-per-page", type=positive_int, default=SiteOptions.tokens_per_page,
                        help="tokens per expectancy page (default: %(default)s)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="how the states are stored in memory (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--allow-unsafe-pickle", action="store_true",
                        help="DANGEROUS: unpickle the checkpoint without the class allowlist, "
                             "which runs any code it contains; only for files you trust")
    add_common(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reportgen", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parser(commands)
    add_train_parser(commands)
    add_report_parser(commands)
    return parser


def run_demo_command(args: argparse.Namespace) -> None:
    from reportgen.demo import run_demo

    out = run_demo(args.out, args.work, args.seed, args.retrain, args.quiet)
    print(f"report written to {out}/index.html")


def run_train_command(args: argparse.Namespace) -> None:
    from reportgen.train import train

    config = TrainConfig(**{item.name: getattr(args, item.name) for item in fields(TrainConfig)})
    result = train(args.data, args.out, config, progress=False if args.quiet else None)
    print(f"model written to {result.checkpoint}")
    print(f"valid perplexity {result.valid_perplexity:.2f}, test perplexity "
          f"{result.test_perplexity:.2f} (unigram: {result.unigram_test_perplexity:.2f})")


def run_report_command(args: argparse.Namespace) -> None:
    config = ReportConfig(
        checkpoint=args.checkpoint, out=args.out, data=args.data, text=args.text,
        vocabulary=args.vocabulary, name=args.name, max_tokens=args.max_tokens,
        allow_unsafe_pickle=args.allow_unsafe_pickle,
        capture=CaptureOptions(dtype=args.dtype, device=args.device,
                               progress=False if args.quiet else None),
        site=SiteOptions(tokens_per_page=args.tokens_per_page), quiet=args.quiet,
    )
    out = build_report(config)
    print(f"report written to {out}/index.html")


COMMANDS = {"demo": run_demo_command, "train": run_train_command, "report": run_report_command}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except ReportgenError as error:
        if args.debug:
            raise
        print(f"reportgen: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("reportgen: interrupted; no report was written or changed", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
