"""The demo: built-in corpus -> demo model -> its report, with no download and no GPU.

The corpus and the trained model are kept in a cache folder keyed by the seed and the demo's
settings, so a second `reportgen demo` only re-renders.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

from reportgen.analysis.ablation import AblationOptions
from reportgen.analysis.embedding import EmbeddingOptions
from reportgen.progress import note
from reportgen.render.pages import SiteOptions
from reportgen.runs.report import ReportConfig, build_report
from reportgen.training import synthetic
from reportgen.training.train import CHECKPOINT_NAME, LOG_NAME, TrainConfig, train

DEMO_VERSION = 3  # bump when the corpus or the training recipe changes
# The one estimate of the demo's time, for --help: on the project's 2-core Xeon the README's
# runs took 1 min 16 s with the model kept, 2 min 4 s with its training; a machine busy with
# other work takes longer, and the progress lines say how long each stage took.
DEMO_TIME = "about 2 minutes on two cores, about 1 minute once its model is kept"
DEMO_TRAIN = TrainConfig(emsize=64, nhid=128, nlayers=2, lr=20.0, epochs=6, batch_size=20,
                         bptt=35, dropout=0.0, seed=1111,
                         device="cpu")  # the same demo model on every machine, GPU or not


def default_work_folder(seed: int) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "reportgen" / f"demo-v{DEMO_VERSION}-seed{seed}"


def cached_training_matches(model_folder: Path, config: TrainConfig) -> bool:
    log = model_folder / LOG_NAME
    if not (model_folder / CHECKPOINT_NAME).is_file() or not log.is_file():
        return False
    try:
        return json.loads(log.read_text(encoding="utf-8")).get("train_config") == asdict(config)
    except (OSError, ValueError):
        return False


def prepare_demo_model(work: Path, seed: int = 0, retrain: bool = False,
                       quiet: bool = False) -> tuple[Path, Path]:
    """Write the built-in corpus and train the demo model, unless the cache has them.

    Returns (corpus folder, checkpoint path).
    """
    corpus = work / "corpus"
    model_folder = work / "model"
    config = replace(DEMO_TRAIN, seed=DEMO_TRAIN.seed + seed)
    if not all((corpus / name).is_file() for name in ("train.txt", "valid.txt", "test.txt")):
        note(f"writing the built-in corpus to {corpus}", not quiet)
        synthetic.write_corpus(corpus, seed=seed)
    if retrain or not cached_training_matches(model_folder, config):
        note(f"training the demo model ({config.epochs} epochs; kept in {model_folder} for "
             "later runs)", not quiet)
        result = train(corpus, model_folder, config, progress=None if not quiet else False)
        note(
            f"demo model: test perplexity {result.test_perplexity:.2f} against "
            f"{result.unigram_test_perplexity:.2f} for a unigram model, {result.seconds:.0f} s",
            not quiet,
        )
    return corpus, model_folder / CHECKPOINT_NAME


def run_demo(out: Path, work: Path | None = None, seed: int = 0, retrain: bool = False,
             quiet: bool = False, site: SiteOptions | None = None,
             embedding: EmbeddingOptions | None = None,
             ablation: AblationOptions | None = None, threads: int | None = None) -> Path:
    """Render the demo report into `out` and return it; `site` sets the layout and figures,
    `embedding` the t-SNE maps, `ablation` the unit pages' ablation, `threads` t-SNE's threads."""
    work = Path(work) if work else default_work_folder(seed)
    corpus, checkpoint = prepare_demo_model(work, seed, retrain, quiet)
    config = ReportConfig(checkpoint=checkpoint, out=Path(out), data=corpus,
                          name="demo LSTM on the built-in corpus", quiet=quiet,
                          site=site or SiteOptions(), embedding=embedding or EmbeddingOptions(),
                          ablation=ablation or AblationOptions(), threads=threads)
    return build_report(config)
