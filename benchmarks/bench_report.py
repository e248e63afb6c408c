"""A whole report at the thesis's scale, stage by stage, against a thesis-style baseline.

The case: the pytorch/examples "medium" model (2 layers of 650 units, vocabulary 33,278) on the
WikiText-2 test split (245,569 tokens with `<eos>`), or with `--size thesis` the thesis's own
models (2 layers of 2,000 units, embeddings of 400, vocabulary 33,278). Give the checkpoint with
--checkpoint and its training folder with --data; without one, a randomly initialised model of
the size stands in, its vocabulary built from --data as `data.Corpus` builds it and padded with
unused words to 33,278 so that the output layer has the model's size. The numbers differ from a
trained model's, the work does not.

Each stage of the report runs once through the same functions `build_report` chains, and
prints its seconds, its rate and the peak resident memory of the process while it ran (reset
between stages through /proc/self/clear_refs). The baseline does the same work the way a
notebook of the thesis would, on a part the baseline finishes, in the same run:
- capture: one `LSTMCell` step per token and layer, and the decoder's log-softmax per token;
- distributions: `np.histogram` once per neuron, and `scipy.stats.entropy` for each KL;
- word maps: scikit-learn's `TSNE` after PCA, and `AgglomerativeClustering` (single and ward).
Each ratio comes from this one run.

The floor is the capture's arithmetic at the machine's own matrix-product rate, measured in
this run: one LSTM pass and the decoder are 56.8 MFLOP a token for this model.

    python benchmarks/bench_report.py --data ../shared/data/wikitext-2
    python benchmarks/bench_report.py --size thesis --max-tokens 40000 --no-baseline
    python benchmarks/bench_report.py --checkpoint medium.pt --data wikitext-2 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import entropy
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from reportgen.analysis.ablation import AblationOptions, ablate, ablation_units
from reportgen.analysis.bundle import ModelReport
from reportgen.analysis.clustering import cut_labels
from reportgen.analysis.concepts import analyse_concepts
from reportgen.analysis.correlations import analyse_correlations
from reportgen.analysis.distributions import DistributionResult, analyse_distributions
from reportgen.analysis.divergences import KL_SMOOTHING
from reportgen.analysis.embedding import EmbeddingOptions, embed, sample_positions
from reportgen.analysis.gates import GateWeights, analyse_gates
from reportgen.analysis.output_effects import output_effects
from reportgen.analysis.paged_units import decide_paged_units
from reportgen.capture.cache import cached_capture
from reportgen.capture.core import Capture, CaptureOptions
from reportgen.inputs.checkpoint import load_checkpoint, save_checkpoint
from reportgen.inputs.corpus import SPLITS, Vocabulary, add_file_to_vocabulary, tokenize
from reportgen.inputs.features import token_features
from reportgen.inputs.load import Inputs
from reportgen.inputs.model import RNNModel, resolve_device
from reportgen.render.pages import SiteOptions
from reportgen.render.pages.neurons import neuron_page_path
from reportgen.render.pages.unit_dynamics import unit_dynamics
from reportgen.render.site import write_site
from reportgen.runs.report import ReportConfig, options_record, summarise

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' reference
from stepwise import stepwise_capture  # noqa: E402  test code, kept out of the package

SIZES = {  # random stand-ins for a checkpoint: issue 26's two cases
    "medium": {"ntoken": 33_278, "ninp": 650, "nhid": 650, "nlayers": 2},
    "thesis": {"ntoken": 33_278, "ninp": 400, "nhid": 2000, "nlayers": 2},
}
ISSUE_FLOOR = 1_850  # tokens/s: the floor issue 8 measured for the medium model at 105 GFLOP/s
TARGETS = {"medium": (240, 6.0), "thesis": (900, 10.0)}  # whole report: seconds, peak RSS GB


def add_case_arguments(parser: argparse.ArgumentParser) -> None:
    """The case of this benchmark and bench_report_size.py: the corpus, the model, the text."""
    parser.add_argument("--data", type=Path, default=Path("../shared/data/wikitext-2"),
                        help="the corpus folder: its splits make the vocabulary, and "
                             "test.txt is the text (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path,
                        help="a trained model; default: a random model of --size")
    parser.add_argument("--size", choices=SIZES, default="medium",
                        help="the random model: medium, 2x650 with embeddings of 650; thesis, "
                             "2x2000 with embeddings of 400; both with a vocabulary of 33,278 "
                             "(default: %(default)s)")
    parser.add_argument("--text", type=Path, help="the text (default: DATA/test.txt)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time a whole report of a medium LSTM on WikiText-2's test split, stage by "
                    "stage, against a thesis-style baseline in the same run.")
    add_case_arguments(parser)
    parser.add_argument("--max-tokens", type=int, help="analyse only the first N tokens")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto (a CUDA GPU when there is one), cpu or cuda (default: auto)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--baseline-tokens", type=int, default=1000,
                        help="tokens the LSTMCell baseline steps through (default: %(default)s)")
    parser.add_argument("--baseline-points", type=int, default=EmbeddingOptions().max_points,
                        help="points of the scikit-learn map, the report's own number by "
                             "default (default: %(default)s)")
    parser.add_argument("--no-baseline", action="store_true", help="time only the report")
    parser.add_argument("--ablation-tokens", type=int, default=AblationOptions.tokens,
                        help="the ablation's token budget (default: %(default)s)")
    parser.add_argument("--ablate-all", action="store_true",
                        help="also time the ablation of every unit, as --ablate-all runs it")
    parser.add_argument("--no-images", action="store_true", help="render without figures")
    parser.add_argument("--work", type=Path, help="folder for the report and the capture cache "
                        "(default: a temporary folder, removed at the end)")
    return parser.parse_args()


def peak_rss_reset() -> bool:
    """Start a new peak-RSS measurement; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_gb() -> float:
    """The process's peak resident memory since the last reset, in GB (VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


@dataclass
class Stage:
    name: str
    seconds: float
    peak_gb: float
    rate: str = ""


@dataclass
class Timer:
    stages: list[Stage] = field(default_factory=list)

    def seconds(self, name: str) -> float:
        return next(stage.seconds for stage in self.stages if stage.name == name)

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        peak_rss_reset()
        record = Stage(name, 0.0, 0.0)
        started = time.perf_counter()
        yield record
        record.seconds = time.perf_counter() - started
        record.peak_gb = peak_rss_gb()
        self.stages.append(record)
        print(f"  {name:<34} {record.seconds:8.1f} s  peak RSS {record.peak_gb:5.2f} GB  "
              f"{record.rate}", flush=True)


def median_seconds(function: Callable[[], Any], repeats: int = 3) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def gemm_gflops(hidden: int, vocabulary: int, device: torch.device) -> float:
    """The device's float32 matrix-product rate on the decoder's own shape."""
    a = torch.randn(2048, hidden, device=device)
    b = torch.randn(hidden, vocabulary, device=device)

    def product() -> None:
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()

    return 2 * 2048 * hidden * vocabulary / median_seconds(product) / 1e9


def flops_per_token(model: RNNModel) -> float:
    """One LSTM pass (four gates of input and recurrent products a layer) and the decoder."""
    inputs = [model.rnn.input_size] + [model.nhid] * (model.nlayers - 1)
    lstm = sum(2 * 4 * model.nhid * (size + model.nhid) for size in inputs)
    return lstm + 2 * model.nhid * model.ntoken


def padded_vocabulary(data: Path, size: int) -> Vocabulary:
    """The words of DATA's splits in `data.Corpus` order, padded with unused words to `size`."""
    vocabulary = Vocabulary()
    for split in SPLITS:
        if (data / split).is_file():
            add_file_to_vocabulary(vocabulary, data / split)
    if len(vocabulary) > size:
        raise SystemExit(f"{data} has {len(vocabulary):,} words, more than the model's {size:,}")
    for index in range(size - len(vocabulary)):
        vocabulary.add(f"<unused-{index}>")
    return vocabulary


def checkpoint_and_vocabulary(args: argparse.Namespace, work: Path) -> tuple[Path, Vocabulary]:
    """The given checkpoint, or a random model of --size saved as one, and its vocabulary."""
    if args.checkpoint:
        ntoken = load_checkpoint(args.checkpoint).hyperparameters.ntoken
        return args.checkpoint, padded_vocabulary(args.data, ntoken)
    torch.manual_seed(0)
    size = SIZES[args.size]
    model = RNNModel("LSTM", **size, dropout=0.0)
    vocabulary = padded_vocabulary(args.data, size["ntoken"])
    path = work / f"random-{size['nlayers']}x{size['nhid']}.pt"
    save_checkpoint(model, path, vocabulary.words)
    return path, vocabulary


def baseline_distributions(distributions: DistributionResult, captured: Capture) -> None:
    """The baseline counting over the same intervals: `np.histogram` per neuron, then
    `scipy.stats.entropy` for each KL."""
    for key, stats in distributions.states.items():
        values = captured.states[key]
        counts = np.stack([np.histogram(np.asarray(values[:, n], dtype=np.float32), stats.edges)[0]
                           for n in range(values.shape[1])])
        p = counts + KL_SMOOTHING
        q = p.mean(axis=0)
        for row in p:
            entropy(row, q)  # entropy() normalises both
            entropy(q, row)


def baseline_embedding(vectors: np.ndarray, n_clusters: int) -> tuple[float, float]:
    """The baseline word map: scikit-learn PCA to 50 and TSNE, then both agglomerative
    linkages; returns (t-SNE seconds, clustering seconds)."""
    started = time.perf_counter()
    reduced = PCA(n_components=50, random_state=0).fit_transform(vectors)
    xy = TSNE(perplexity=30, init="pca", random_state=0).fit_transform(reduced)
    tsne = time.perf_counter() - started
    started = time.perf_counter()
    for linkage in ("single", "ward"):
        AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage).fit(xy)
    return tsne, time.perf_counter() - started


@dataclass
class Ours:
    """Our side of each comparison, from the report's own stages."""

    capture_rate: float  # tokens/s
    distributions: float  # seconds, every layer and state
    tsne: float  # seconds for one map of options.max_points points
    clustering: float  # seconds for both linkages of one map
    points: int  # points of each map


def run_report(args: argparse.Namespace, checkpoint: Path, work: Path,
               timer: Timer) -> tuple[Ours, ModelReport]:
    """Every stage of `build_report`, in its order, each timed on its own; the t-SNE maps and
    their clustering are also timed apart, to compare each with its baseline."""
    config = ReportConfig(
        checkpoint=checkpoint, out=work / "report", text=args.text_path,
        name="benchmark", max_tokens=args.max_tokens,
        capture=CaptureOptions(dtype=args.dtype, device=args.device),
        threads=args.threads, cache=work / "cache",
        site=SiteOptions(images=not args.no_images), quiet=True)
    with timer.stage("load"):
        loaded = load_checkpoint(config.checkpoint)
        text = tokenize(config.text, args.vocabulary, config.max_tokens)
    inputs = Inputs(loaded, args.vocabulary, text, config.text)
    n = len(text)
    with timer.stage("capture") as stage:
        captured = cached_capture(loaded.model, text.ids, text.tokens, args.vocabulary.words,
                                  config.capture, loaded.sha256, config.cache).capture
    capture_rate = n / stage.seconds
    streams = captured.streams
    stage.rate = (f"{capture_rate:,.0f} tokens/s; {streams.streams} streams, burn-in "
                  f"{streams.burn_in} (largest {streams.largest_burn_in}), boundary difference "
                  f"{streams.boundary_difference:.1e}")
    with timer.stage("capture again, from the cache") as stage:
        captured = cached_capture(loaded.model, text.ids, text.tokens, args.vocabulary.words,
                                  config.capture, loaded.sha256, config.cache).capture
    report = ModelReport(summarise(config, inputs, captured), captured,
                         options=options_record(config))
    with timer.stage("features"):
        report.features = token_features(captured.tokens)
    with timer.stage("distributions") as stage:
        report.distributions = analyse_distributions(captured)
    values = n * sum(stats.n_neurons for stats in report.distributions.states.values())
    stage.rate = f"{values / stage.seconds / 1e6:,.0f} M values/s"
    with timer.stage("concepts"):
        report.concepts = analyse_concepts(captured, report.features)
    time_dynamics_analyses(report, loaded.model, config.site, timer)
    unit_effect_stages(args, loaded.model, report, timer)
    with timer.stage("t-SNE and clustering") as stage:
        report.embeddings = [embed(captured, *key, config.embedding, n_jobs=config.threads)
                             for key in captured.keys]
    started = time.perf_counter()
    for result in report.embeddings:
        options = config.embedding
        cut_labels(result.xy, result.pca, tuple(k for k in options.all_cuts if k),
                   options.min_cluster_size, options.distance_threshold)
    clustering = (time.perf_counter() - started) / len(report.embeddings)
    tsne = stage.seconds / len(report.embeddings) - clustering
    stage.rate = (f"{len(report.embeddings)} maps of {report.embeddings[0].n_points:,} points; "
                  f"a map: t-SNE {tsne:.1f} s, clustering at "
                  f"{len(config.embedding.all_cuts)} cuts {clustering:.2f} s")
    with timer.stage("render") as stage:
        write_site(report, config.out, config.site)
    stage.rate = f"{sum(1 for _ in config.out.rglob('*.html')):,} pages"
    ours = Ours(capture_rate, timer.seconds("distributions"), tsne, clustering,
                report.embeddings[0].n_points)
    return ours, report


# issue 15's stages with the defaults; the unit pages' dynamics, inside render, are added to them
NEW_STAGES = ("gates", "correlated units", "output effects", "ablation, paged units")
PAGE_DYNAMICS = "unit dynamics of the pages"


def time_dynamics_analyses(report: ModelReport, model: RNNModel, site: SiteOptions,
                           timer: Timer) -> None:
    """Issue 15's analyses, as `build_report` runs them: gate statistics and correlated units."""
    assert report.distributions is not None
    weights = GateWeights.of(model)
    if weights is not None:
        with timer.stage("gates") as stage:
            report.gates = analyse_gates(report.capture, weights)
        stage.rate = f"{len(weights.layers)} layers x {report.capture.n_tokens:,} tokens"
    with timer.stage("correlated units") as stage:
        paged = decide_paged_units(report.distributions, report.concepts, site.top_neurons).units
        report.correlations = analyse_correlations(report.capture, paged)
    stage.rate = f"{sum(map(len, paged.values()))} paged units against all"


def time_page_dynamics(report: ModelReport, site: SiteOptions, timer: Timer) -> None:
    """The unit pages' dynamics (trace, decile contexts, partners), part of render, timed again
    here on their own so that their share can be counted with issue 15's stages."""
    assert report.distributions is not None
    paged = decide_paged_units(report.distributions, report.concepts, site.top_neurons).units
    with timer.stage(PAGE_DYNAMICS) as stage:
        for key, units in paged.items():
            for unit in units:
                unit_dynamics(report, key, unit, "", neuron_page_path)
    stage.rate = f"{sum(map(len, paged.values()))} unit pages (within render)"


def unit_effect_stages(args: argparse.Namespace, model: RNNModel, report: ModelReport,
                       timer: Timer) -> None:
    """Output effects and the mean-ablation of the paged units, as `build_report` runs them."""
    assert report.distributions is not None and report.features is not None
    paged = decide_paged_units(report.distributions, report.concepts,
                               SiteOptions().top_neurons).units
    with timer.stage("output effects"):
        report.output_effects = output_effects(model, paged.get((model.nlayers, "h"), []))
    means = {key: stats.mean for key, stats in report.distributions.states.items()}
    options = AblationOptions(tokens=args.ablation_tokens)
    units = ablation_units(model, paged, False)
    with timer.stage("ablation, paged units") as stage:
        stage.rate = f"{sum(map(len, units.values())):,} units x {options.tokens:,} tokens"
        report.ablation = ablate(model, report.capture.token_ids, units, means, report.features,
                                 options, args.device)


def ablate_all_stage(args: argparse.Namespace, checkpoint: Path, report: ModelReport,
                     timer: Timer) -> None:
    """The ablation of every unit, as --ablate-all runs it; timed after the report, apart."""
    assert report.distributions is not None and report.features is not None
    model = load_checkpoint(checkpoint).model
    every = ablation_units(model, {key: [] for key in report.distributions.states}, True)
    means = {key: stats.mean for key, stats in report.distributions.states.items()}
    options = AblationOptions(tokens=args.ablation_tokens, all_units=True)
    with timer.stage("ablation, every unit (--ablate-all)") as stage:
        stage.rate = f"{sum(map(len, every.values())):,} units x {options.tokens:,} tokens"
        ablate(model, report.capture.token_ids, every, means, report.features, options,
               args.device)


def run_baseline(args: argparse.Namespace, checkpoint: Path, report: ModelReport, ours: Ours,
                 timer: Timer) -> None:
    captured = report.capture
    model = load_checkpoint(checkpoint).model
    ids = captured.token_ids[: args.baseline_tokens]
    with timer.stage("baseline capture (LSTMCell loop)") as stage:
        stepwise_capture(model, ids)
    baseline_rate = len(ids) / stage.seconds
    stage.rate = f"{baseline_rate:,.0f} tokens/s over {len(ids):,} tokens"
    with timer.stage("baseline distributions") as stage:
        baseline_distributions(report.distributions, captured)
    stage.rate = "np.histogram per neuron, scipy entropy"
    baseline_counting = stage.seconds
    positions = sample_positions(captured.tokens, args.baseline_points, 0)
    vectors = np.asarray(captured.states[captured.keys[0]][positions], dtype=np.float32)
    with timer.stage("baseline t-SNE and clustering") as stage:
        tsne, clustering = baseline_embedding(vectors, EmbeddingOptions().n_clusters)
    stage.rate = (f"scikit-learn, one map of {len(positions):,} points: t-SNE {tsne:.1f} s, "
                  f"clustering {clustering:.2f} s")
    n, maps = captured.n_tokens, len(captured.keys)
    points = ("" if ours.points == len(positions)
              else f" ({ours.points:,} vs {len(positions):,} points)")
    rows = [
        ("capture", f"{ours.capture_rate:,.0f} vs {baseline_rate:,.0f} tokens/s",
         ours.capture_rate / baseline_rate),
        ("distributions", f"{ours.distributions:.1f} s vs {baseline_counting:.1f} s",
         baseline_counting / ours.distributions),
        (f"t-SNE, one map{points}", f"{ours.tsne:.1f} s vs {tsne:.1f} s", tsne / ours.tsne),
        (f"clustering, one map{points}", f"{ours.clustering:.2f} s vs {clustering:.2f} s",
         clustering / ours.clustering),
    ]
    baseline_total = n / baseline_rate + baseline_counting + maps * (tsne + clustering)
    ours_total = n / ours.capture_rate + ours.distributions + maps * (ours.tsne + ours.clustering)
    rows.append(("these stages together", f"{ours_total:,.0f} s vs {baseline_total:,.0f} s",
                 baseline_total / ours_total))
    print(f"\nreportgen against the baseline (same run; the baseline capture extrapolated "
          f"from {len(ids):,} to {n:,} tokens):")
    for name, figures, ratio in rows:
        print(f"  {name:<26} {figures:<34} {ratio:6.1f}x")


def print_summary(captured: Capture, ours: Ours, timer: Timer, flops: float,
                  gflops_runs: list[float], size: str) -> None:
    """The capture against its floor, at the matrix-product rate measured before and after the
    stages (their mean, since a shared machine drifts), and the whole report's figures."""
    gflops = float(np.mean(gflops_runs))
    floor = gflops * 1e9 / flops
    report_stages = [stage for stage in timer.stages if not stage.name.startswith(
        ("baseline", "capture again", "ablation, every", PAGE_DYNAMICS))]
    whole = sum(stage.seconds for stage in report_stages)
    peak = max(stage.peak_gb for stage in timer.stages if not stage.name.startswith("baseline"))
    print(f"\n{captured.n_tokens:,} tokens, {flops / 1e6:.1f} MFLOP a token")
    print(f"  matrix products: {' and '.join(f'{rate:.0f}' for rate in gflops_runs)} GFLOP/s "
          "before and after the stages")
    print(f"  capture: {ours.capture_rate:,.0f} tokens/s; floor at this run's {gflops:.0f} GFLOP/s:"
          f" {floor:,.0f} tokens/s ({ours.capture_rate / floor:.0%}); against the issue's "
          f"{ISSUE_FLOOR:,}: {ours.capture_rate / ISSUE_FLOOR:.0%} (target 75%)")
    seconds_target, rss_target = TARGETS[size]
    print(f"  whole report (load, capture, analyses, maps, render): {whole:,.0f} s "
          f"(target {seconds_target} s on the whole test split); peak RSS {peak:.2f} GB "
          f"(target {rss_target:g} GB)")
    new = sum(stage.seconds for stage in timer.stages if stage.name in (*NEW_STAGES, PAGE_DYNAMICS))
    print(f"  issue 15's stages with the defaults ({', '.join(NEW_STAGES)}, and the "
          f"{PAGE_DYNAMICS} inside render): {new:,.1f} s, {new / (whole - new):.1%} added to the "
          "rest of the report (limit 25%)")


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="reportgen-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    args.text_path = args.text or args.data / "test.txt"
    checkpoint, args.vocabulary = checkpoint_and_vocabulary(args, work)
    timer = Timer()
    described = args.checkpoint or f"a random {args.size} model"
    print(f"reportgen whole-report benchmark: {described}, vocabulary "
          f"{len(args.vocabulary):,}, text {args.text_path}; torch threads "
          f"{torch.get_num_threads()}, device {resolve_device(args.device)}; peak RSS per stage "
          f"{'(VmHWM, reset per stage)' if peak_rss_reset() else '(since the start)'}")
    model = load_checkpoint(checkpoint).model
    shape, flops = (model.nhid, model.ntoken), flops_per_token(model)
    model_width = model.nhid
    del model  # the report loads its own; the benchmark should not hold a second copy
    device = resolve_device(args.device)
    try:
        gflops_runs = [gemm_gflops(*shape, device)]
        ours, report = run_report(args, checkpoint, work, timer)
        if args.ablate_all:
            ablate_all_stage(args, checkpoint, report, timer)
        if not args.no_baseline:
            run_baseline(args, checkpoint, report, ours, timer)
        time_page_dynamics(report, SiteOptions(), timer)
        gflops_runs.append(gemm_gflops(*shape, device))
        print_summary(report.capture, ours, timer, flops, gflops_runs,
                      "thesis" if model_width >= 2000 else "medium")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
