"""reportgen: static HTML reports of what a word-level LSTM language model's neurons do.

The whole report is `build_report(ReportConfig(...))`; every stage is public on its own:

    vocabulary = vocabulary_from_folder("wikitext-2")
    text = tokenize("wikitext-2/test.txt", vocabulary)
    cap = capture(load_checkpoint("model.pt").model, text.ids, text.tokens, vocabulary.words)
    neurons = analyse_distributions(cap)
    neurons.states[(1, "h")].kl_chart()   # an Altair chart, shown inline in a notebook
    embed(cap, 1, "h").chart("ward")        # t-SNE map of layer 1's hidden state, clustered
"""

from reportgen.analysis.alignment import align_models
from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import analyse_distributions
from reportgen.analysis.embedding import EmbeddingOptions, embed
from reportgen.analysis.similarity import compare_representations
from reportgen.analysis.state_sample import sample_states
from reportgen.capture.cache import cached_capture
from reportgen.capture.core import Capture, CaptureOptions, capture
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import (
    Vocabulary,
    tokenize,
    vocabulary_from_file,
    vocabulary_from_folder,
)
from reportgen.inputs.feature_files import read_feature_file
from reportgen.inputs.features import token_features
from reportgen.render.comparable import compare_models as compare
from reportgen.render.comparable import figures_of, read_comparable
from reportgen.render.pages import SiteOptions
from reportgen.runs.combine import combine_reports
from reportgen.runs.demo import run_demo
from reportgen.runs.model_specs import ModelSpec
from reportgen.runs.multi_report import build_reports
from reportgen.runs.report import NeuronOptions, ReportConfig, build_report
from reportgen.training.sweep import train_sweep
from reportgen.training.train import TrainConfig, train
from reportgen.versions import reportgen_version

__version__ = reportgen_version()

__all__ = [
    "Capture", "CaptureOptions", "EmbeddingOptions", "ModelSpec", "NeuronOptions", "ReportConfig", "ReportgenError",
    "SiteOptions", "TrainConfig", "Vocabulary", "analyse_concepts", "analyse_distributions",
    "align_models", "build_report", "build_reports", "cached_capture", "capture", "combine_reports",
    "compare", "compare_representations", "embed", "figures_of", "load_checkpoint",
    "read_comparable",
    "read_feature_file", "run_demo", "sample_states", "token_features", "tokenize",
    "train", "train_sweep", "vocabulary_from_file", "vocabulary_from_folder",
]
