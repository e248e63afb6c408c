"""The Python API stage by stage, as a notebook would use it, on the built-in corpus.

Run: python examples/notebook_api.py [OUT]   (about a minute; writes OUT, default api-report/)
Each stage is a public function; each analysis result can give its Altair chart.
"""

import sys
import tempfile
from pathlib import Path

import reportgen
from reportgen import synthetic


def main(out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="reportgen-example-"))
    corpus = synthetic.write_corpus(work / "corpus", seed=1, n_train=80_000, n_valid=4_000,
                                    n_test=4_000)
    config = reportgen.TrainConfig(emsize=32, nhid=64, epochs=2, dropout=0.0)
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

    site = reportgen.build_report(reportgen.ReportConfig(trained.checkpoint, out, data=corpus))
    print(f"report written to {site}/index.html")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "api-report"))
