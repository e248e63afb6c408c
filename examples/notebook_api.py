"""The Python API stage by stage, as a notebook would use it, on the built-in corpus.

Run: python examples/notebook_api.py [OUT]   (about a minute; writes OUT, default api-report/)
     python examples/notebook_api.py --quick OUT   (seconds: a smaller corpus, model and report,
     as CI runs it in tests/test_examples.py)
Each stage is a public function; each analysis result can give its Altair chart.
"""

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import reportgen
from reportgen.training import synthetic


@dataclass(frozen=True)
class Size:
    n_train: int  # tokens of the corpus's training split
    n_test: int  # tokens of its valid and test splits
    nhid: int
    epochs: int


FULL = Size(n_train=80_000, n_test=4_000, nhid=64, epochs=2)
QUICK = Size(n_train=40_000, n_test=1_000, nhid=24, epochs=1)


def main(out: Path, size: Size = FULL) -> None:
    work = Path(tempfile.mkdtemp(prefix="reportgen-example-"))
    corpus = synthetic.write_corpus(work / "corpus", seed=1, n_train=size.n_train,
                                    n_valid=size.n_test, n_test=size.n_test)
    config = reportgen.TrainConfig(emsize=size.nhid // 2, nhid=size.nhid, epochs=size.epochs,
                                   dropout=0.0)
    trained = reportgen.train(corpus, work / "model", config)
    print(f"test perplexity {trained.test_perplexity:.1f} "
          f"(unigram {trained.unigram_test_perplexity:.1f})")

    vocabulary = reportgen.vocabulary_from_folder(corpus)
    text = reportgen.tokenize(corpus / "test.txt", vocabulary)
    model = reportgen.load_checkpoint(trained.checkpoint).model
    cap = reportgen.capture(model, text.ids, text.tokens, vocabulary.words)
    print(f"captured {cap.n_tokens} tokens, states {[f'L{l}-{s}' for l, s in cap.keys]}")

    neurons = reportgen.analyse_distributions(cap)
    features = reportgen.token_features(cap.tokens)
    concepts = reportgen.analyse_concepts(cap, features)
    table = neurons.to_frame(concepts)
    print(table.sort_values("rank").head(5).to_string(index=False))
    for entry in concepts.index()[:4]:  # the concepts page: the units that track a feature
        print(f"{entry.feature}: L{entry.key[0]}-{entry.key[1]} unit {entry.neuron}, AUROC "
              f"{entry.auroc:.3f}, within-word {entry.within:.3f}, labelled {entry.labelled}")
    neurons.states[(1, "h")].kl_chart(concepts)  # in a notebook, the last line shows the chart

    maps = reportgen.embed(cap, 1, "h", classes=features.classes())
    for row in maps.cut_tables[("ward_pca", 40)][:5]:  # ward on the PCA states, 40 clusters
        print(f"cluster {row.cluster}: {row.size} tokens, {row.word_class or 'no class'} "
              f"{row.class_share:.0%}: {row.words_text(5)}")

    full = size is FULL  # the quick run leaves out the report's figures and maps: minutes
    site = reportgen.build_report(reportgen.ReportConfig(
        trained.checkpoint, out, data=corpus, embed_states=None if full else (),
        site=reportgen.SiteOptions(images=full)))
    print(f"report written to {site}/index.html")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("api-report"))
    parser.add_argument("--quick", action="store_true",
                        help="a smaller corpus, model and report: seconds, for CI")
    args = parser.parse_args()
    main(args.out, QUICK if args.quick else FULL)
