"""reportgen: static HTML reports of what a word-level LSTM language model's neurons do.

The whole report is `build_report(ReportConfig(...))`; every stage is public on its own:

    vocabulary = vocabulary_from_folder("wikitext-2")
    text = tokenize("wikitext-2/test.txt", vocabulary)
    cap = capture(load_checkpoint("model.pt").model, text.ids, text.tokens, vocabulary.words)
    neurons = analyse_distributions(cap)
    neurons.states[(1, "h")].kl_chart()   # an Altair chart, shown inline in a notebook
"""

from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.distributions import analyse_distributions
from reportgen.capture import Capture, CaptureOptions, capture
from reportgen.corpus import Vocabulary, tokenize, vocabulary_from_file, vocabulary_from_folder
from reportgen.demo import run_demo
from reportgen.errors import ReportgenError
from reportgen.features import token_features
from reportgen.model import load_checkpoint
from reportgen.pages import SiteOptions
from reportgen.report import NeuronOptions, ReportConfig, build_report
from reportgen.train import TrainConfig, train
from reportgen.versions import reportgen_version

__version__ = reportgen_version()

__all__ = [
    "Capture", "CaptureOptions", "NeuronOptions", "ReportConfig", "ReportgenError",
    "SiteOptions", "TrainConfig", "Vocabulary", "analyse_concepts", "analyse_distributions",
    "build_report", "capture", "load_checkpoint", "run_demo", "token_features", "tokenize",
    "train", "vocabulary_from_file", "vocabulary_from_folder",
]
