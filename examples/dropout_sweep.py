"""A dropout sweep on the built-in corpus: train one LSTM per dropout and seed, then render
each model's report and the page that compares them, as the thesis compared its nine LSTMs.

Run: python examples/dropout_sweep.py [OUT]   (about five minutes on two cores; writes OUT,
default dropout-sweep/, and keeps the corpus and models in a temporary folder it names)
     python examples/dropout_sweep.py --quick OUT   (two small models, two dropouts and one
     seed, on a smaller corpus: as CI runs it in tests/test_examples.py)

The same from the command line:
    reportgen train --data CORPUS --out runs --emsize 32 --nhid 64 --epochs 3 \
        --dropout 0 0.2 0.4 0.6 --seed 1 2
    reportgen report runs/*/model.pt --data CORPUS --out dropout-sweep --no-clusters
"""

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reportgen.render.pages import SiteOptions
from reportgen.runs.model_specs import ModelSpec
from reportgen.runs.multi_report import build_reports
from reportgen.runs.report import ReportConfig
from reportgen.training import synthetic
from reportgen.training.sweep import train_sweep
from reportgen.training.train import TrainConfig


@dataclass(frozen=True)
class Sweep:
    dropouts: tuple[float, ...]
    seeds: tuple[int, ...]
    recipe: TrainConfig
    n_train: int  # tokens of the corpus's training split
    n_test: int  # tokens of its valid and test splits


FULL = Sweep((0.0, 0.2, 0.4, 0.6), (1, 2),
             TrainConfig(emsize=32, nhid=64, nlayers=2, epochs=3, batch_size=20, bptt=35),
             n_train=100_000, n_test=5_000)
QUICK = Sweep((0.0, 0.4), (1,),
              TrainConfig(emsize=16, nhid=24, nlayers=2, epochs=1, batch_size=20, bptt=35),
              n_train=20_000, n_test=1_000)


def main(out: Path, sweep_size: Sweep = FULL) -> None:
    work = Path(tempfile.mkdtemp(prefix="reportgen-sweep-"))
    print(f"corpus and models in {work}")
    corpus = synthetic.write_corpus(work / "corpus", seed=0, n_train=sweep_size.n_train,
                                    n_valid=sweep_size.n_test, n_test=sweep_size.n_test)
    sweep = train_sweep(corpus, work / "runs", sweep_size.recipe, sweep_size.dropouts,
                        sweep_size.seeds)
    print(sweep.format_table())

    # Each trained checkpoint stores its dropout and seed; a pytorch/examples pickle would need
    # them given: ModelSpec(path, name, dropout=0.5, seed=2).
    models = [ModelSpec(run.result.checkpoint) for run in sweep.runs if run.result is not None]
    shared = ReportConfig(checkpoint=models[0].checkpoint, out=out, data=corpus,
                          embed_states=(),  # no t-SNE maps: they take most of a report's time
                          name="Dropout sweep on the built-in corpus",
                          site=SiteOptions(images=sweep_size is FULL))  # figures take seconds
    run = build_reports(models, shared)

    # The comparison is the notebook's object too: run.comparison.charts()["mean-abs"] shows
    # a chart inline, and compare([report, ...]) builds one from reports held in memory.
    table = run.comparison.table
    print(table.groupby(["dropout", "layer", "state"])[["mean_abs", "near_zero_share"]]
          .mean().unstack(["layer", "state"]).round(3).to_string())
    print(f"comparison written to {run.out}/index.html")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("dropout-sweep"))
    parser.add_argument("--quick", action="store_true",
                        help="two small models on a smaller corpus: a minute, for CI")
    args = parser.parse_args()
    main(args.out, QUICK if args.quick else FULL)
