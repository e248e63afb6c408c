"""How big a report is, against the budget: the whole folder at most 30 MB and no page over 5 MB,
for a 2x650 LSTM on WikiText-2's test split (245,569 tokens with `<eos>`).

The analyses run once; the site is then written twice from them, in the same run:
- the defaults: figures of the main charts only, the expectancy pages for the text's first
  20,000 tokens, and everything in its compact form;
- the baseline, everything a reader could ask for: every figure (`--all-figures`) and the
  expectancy pages for the whole text (`--expectancy-tokens all`).
It prints each one's size by part (expectancy pages, neuron pages, other pages, data, img,
assets), its largest page, and the ratio of the baseline to the defaults.

Without --checkpoint a randomly initialised 2x650 model stands in, as in bench_report.py; a
trained one predicts more sharply, so its expectancy tooltips repeat fewer words and weigh less.

    python benchmarks/bench_report_size.py --data ../shared/data/wikitext-2
    python benchmarks/bench_report_size.py --checkpoint medium.pt --data wikitext-2 --text test.txt
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from bench_report import add_case_arguments, checkpoint_and_vocabulary

from reportgen.inputs.load import load_inputs
from reportgen.render.pages import SiteOptions
from reportgen.render.site import write_site
from reportgen.runs.report import ReportConfig, analyse

BUDGET_MB = 30.0
PAGE_BUDGET_MB = 5.0
MB = 1e6


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The size of a 2x650 model's report on WikiText-2's test split, with the "
                    "default options and with every figure and page, against the budget.")
    add_case_arguments(parser)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch and t-SNE threads (default: %(default)s)")
    parser.add_argument("--work", type=Path, help="folder for the reports (default: a "
                        "temporary folder); the capture and analyses are cached where "
                        "`reportgen report` caches them, so a second run only renders")
    return parser.parse_args()


def part_of(relative: Path) -> str:
    """Which part of the folder a file belongs to, for the table."""
    top = relative.parts[0]
    if top in ("data", "img", "assets", "neuron"):
        return top
    if relative.name.startswith("expectancy"):
        return "expectancy pages"
    return "other pages" if relative.suffix == ".html" else "other"


def sizes(folder: Path) -> tuple[dict[str, int], tuple[int, str], int]:
    """Bytes by part, the largest page (bytes, path) and the whole folder's bytes."""
    parts: dict[str, int] = {}
    largest = (0, "")
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(folder)
        size = path.stat().st_size
        parts[part_of(relative)] = parts.get(part_of(relative), 0) + size
        if path.suffix == ".html":
            largest = max(largest, (size, str(relative)))
    return parts, largest, sum(parts.values())


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="reportgen-size-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        checkpoint, vocabulary = checkpoint_and_vocabulary(args, work)
        vocabulary_file = work / "vocab.txt"
        vocabulary_file.write_text("\n".join(vocabulary.words) + "\n", encoding="utf-8")
        config = ReportConfig(checkpoint=checkpoint, out=work / "default",
                              text=args.text or args.data / "test.txt",
                              vocabulary=vocabulary_file, quiet=True)  # reportgen's own cache
        config.threads = args.threads
        report = analyse(config, load_inputs(config), {})
        default = SiteOptions()
        everything = replace(default, all_figures=True, expectancy_tokens=None)
        measured = {}
        for name, options in (("defaults", default), ("baseline: everything", everything)):
            out = work / name.split(":")[0]
            write_site(report, out, options)
            measured[name] = sizes(out)
    hyper = report.summary.hyperparameters
    print(f"model: {hyper['nlayers']}x{hyper['nhid']} {hyper['rnn_type']}, "
          f"{report.capture.n_tokens:,} tokens, threads {args.threads}")
    names = sorted({part for parts, _, _ in measured.values() for part in parts})
    print(f"{'part':<20}" + "".join(f"{name:>24}" for name in measured))
    for part in names:
        print(f"{part:<20}" + "".join(f"{parts.get(part, 0) / MB:>21.1f} MB"
                                      for parts, _, _ in measured.values()))
    print(f"{'total':<20}" + "".join(f"{total / MB:>21.1f} MB" for _, _, total in measured.values()))
    for name, (_, (size, page), total) in measured.items():
        verdict = "within" if total <= BUDGET_MB * MB and size <= PAGE_BUDGET_MB * MB else "OVER"
        print(f"{name}: largest page {page} {size / MB:.2f} MB; {verdict} the budget of "
              f"{BUDGET_MB:.0f} MB and {PAGE_BUDGET_MB:.0f} MB a page")
    ratio = measured["baseline: everything"][2] / measured["defaults"][2]
    print(f"baseline / defaults: {ratio:.2f}x")


if __name__ == "__main__":
    main()
