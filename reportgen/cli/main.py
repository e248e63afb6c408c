"""The `reportgen` command: a thin layer over the Python API.

Every problem the user can fix ends the run with one line on stderr and a non-zero exit;
`--debug` shows the traceback instead. The flags of each command and their help are in
`reportgen.cli.arguments`; this module builds the parser from them and runs the commands.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import NoReturn

import numpy as np

from reportgen.analysis.ablation import AblationOptions
from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.analysis.state_sample import SAMPLE_POSITIONS
from reportgen.capture.cache_contents import cache_entries, cache_summary, clear_cache, format_size
from reportgen.capture.core import CaptureOptions
from reportgen.cli.arguments import (
    add_cache_parser,
    add_compare_parser,
    add_demo_parser,
    add_report_parser,
    add_train_parser,
)
from reportgen.errors import ReportgenError
from reportgen.inputs.agreement_suites import AgreementOptions
from reportgen.render.atomic import check_output_folder
from reportgen.render.pages import SiteOptions
from reportgen.runs.combine import combine_reports
from reportgen.runs.demo import DEMO_TIME, run_demo
from reportgen.runs.model_specs import (
    ModelsFile,
    ModelSpec,
    parse_model_argument,
    read_models_file,
    select_models,
)
from reportgen.runs.multi_report import build_reports
from reportgen.runs.report import NeuronOptions, ReportConfig, cache_lines, run_report
from reportgen.threads import limited_threads
from reportgen.training.sweep import train_sweep
from reportgen.training.train import TrainConfig
from reportgen.versions import reportgen_version

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's status for a command line it cannot parse
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process killed by it

DESCRIPTION = """\
Turn a trained word-level LSTM language model and a text into a static HTML report of what its
neurons and states do: an expectancy heatmap of the text and more, as a folder of pages that
opens from file:// or GitHub Pages with no network.
"""

EPILOG = """\
examples:
  reportgen demo --out demo-report
      built-in corpus -> demo model -> report, no download, no GPU;
      {demo_time}
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


class OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes end as every other error does: one line on stderr (status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"reportgen: error: {message}; see `{self.prog} --help`\n")


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


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="reportgen", description=DESCRIPTION, epilog=EPILOG.format(demo_time=DEMO_TIME),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reportgen {reportgen_version()}",
                        help="print reportgen's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parser(commands)
    add_train_parser(commands)
    add_report_parser(commands)
    add_compare_parser(commands)
    add_cache_parser(commands)
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
    from reportgen.training.train import train

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
        capture=CaptureOptions(dtype=args.dtype, device=args.device,
                               progress=False if args.quiet else None, streams=args.streams),
        cache=None if args.no_cache else args.cache,
        neurons=NeuronOptions(cell_interval=args.cell_interval, rank_by=args.rank_by,
                              kl_smoothing=args.kl_smoothing,
                              label_threshold=args.label_threshold,
                              within_threshold=args.within_threshold,
                              word_label_share=args.word_label_share),
        feature_files=tuple(args.features),
        ablation=AblationOptions(tokens=args.ablation_tokens, all_units=args.ablate_all),
        agreement=AgreementOptions(enabled=not args.no_agreement, files=tuple(args.agreement),
                                   per_condition=args.agreement_items),
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
        print("\n".join(cache_lines(config.cache, run.capture_entries)))
        if run.failures:
            raise ReportgenError(run.failure_message())
        return
    single = run_report(config)
    print(f"report written to {single.out}/index.html")
    print("\n".join(cache_lines(config.cache, single.capture_entries)))


def run_compare_command(args: argparse.Namespace) -> None:
    combined = combine_reports(args.reports, args.out, args.name,
                               SiteOptions(images=not args.no_images))
    print(f"comparison written to {args.out}/index.html")
    if combined.without_states:
        print(f"no unit alignment and no CKA: {', '.join(combined.without_states)} kept no "
              f"states; render again with --comparison-positions {SAMPLE_POSITIONS} to align "
              "the units")


def run_cache_command(args: argparse.Namespace) -> None:
    """`reportgen cache list` and `reportgen cache clear [--older-than DAYS]`."""
    if args.cache_command == "clear":
        removed = clear_cache(args.cache, args.older_than)
        print(f"removed {len(removed)} {'entry' if len(removed) == 1 else 'entries'}, "
              f"{format_size(sum(info.size for info in removed))}; {cache_summary(args.cache)}")
        return
    now = time.time()
    for info in cache_entries(args.cache):
        tokens = f"{info.n_tokens:,} tokens" if info.n_tokens is not None else "? tokens"
        print(f"{info.path.name}  {format_size(info.size):>8}  used "
              f"{(now - info.last_used) / 86400:.1f} days ago  {tokens}  "
              f"model {info.checkpoint or '(not recorded)'}  text {info.text or '(not recorded)'}")
    print(cache_summary(args.cache))


COMMANDS = {"demo": run_demo_command, "train": run_train_command, "report": run_report_command,
            "compare": run_compare_command, "cache": run_cache_command}


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
