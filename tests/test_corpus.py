"""The vocabulary must give the ids pytorch/examples `data.Corpus` gives, or a model reads noise."""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from reportgen.errors import ReportgenError
from reportgen.inputs import corpus
from reportgen.inputs.corpus import (
    EOS,
    load_vocabulary,
    read_lines,
    tokenize,
    vocabulary_from_file,
    vocabulary_from_folder,
    write_vocabulary,
)


def data_corpus_dictionary(folder: Path) -> list[str]:
    """pytorch/examples data.Corpus, transcribed: train, valid, test; split(); <eos>."""
    idx2word: list[str] = []
    word2idx: dict[str, int] = {}
    for name in ("train.txt", "valid.txt", "test.txt"):
        with open(folder / name, encoding="utf8") as f:
            for line in f:
                for word in line.split() + ["<eos>"]:
                    if word not in word2idx:
                        idx2word.append(word)
                        word2idx[word] = len(idx2word) - 1
    return idx2word


@pytest.fixture
def fixture_folder(tmp_path: Path) -> Path:
    (tmp_path / "train.txt").write_text(" = Title = \n\n the cat sat\tdown .\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("a dog <unk> sat\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("the  bird  flew\r\nthe cat\n", encoding="utf-8")
    return tmp_path


def test_folder_vocabulary_matches_data_corpus(fixture_folder: Path) -> None:
    assert vocabulary_from_folder(fixture_folder).words == data_corpus_dictionary(fixture_folder)


def test_folder_vocabulary_matches_data_corpus_on_generated_text(tiny_corpus: Path) -> None:
    assert vocabulary_from_folder(tiny_corpus).words == data_corpus_dictionary(tiny_corpus)


def test_single_file_vocabulary_is_first_appearance_order(fixture_folder: Path) -> None:
    vocabulary = vocabulary_from_file(fixture_folder / "train.txt")
    assert vocabulary.words == ["=", "Title", EOS, "the", "cat", "sat", "down", "."]


def test_tokenize_gives_the_ids_data_corpus_gives(fixture_folder: Path) -> None:
    vocabulary = vocabulary_from_folder(fixture_folder)
    text = tokenize(fixture_folder / "test.txt", vocabulary)
    assert text.tokens == ["the", "bird", "flew", EOS, "the", "cat", EOS]
    expected = [vocabulary.index[w] for w in text.tokens]
    assert text.ids.tolist() == expected and text.ids.dtype == np.int64


def test_unknown_word_maps_to_unk_when_vocabulary_has_it(fixture_folder: Path, tmp_path: Path) -> None:
    vocabulary = vocabulary_from_folder(fixture_folder)
    other = tmp_path / "other.txt"
    other.write_text("the zebra sat\n", encoding="utf-8")
    text = tokenize(other, vocabulary)
    assert text.tokens == ["the", "<unk>", "sat", EOS]
    assert text.n_unknown == 1


def test_unknown_word_without_unk_names_word_and_line(tmp_path: Path) -> None:
    vocabulary = vocabulary_from_file(_write(tmp_path / "v.txt", "a b c\n"))
    with pytest.raises(ReportgenError, match=r"v2\.txt:2: word 'zebra'"):
        tokenize(_write(tmp_path / "v2.txt", "a b\nc zebra\n"), vocabulary)


def test_max_tokens_keeps_a_prefix(fixture_folder: Path) -> None:
    vocabulary = vocabulary_from_folder(fixture_folder)
    text = tokenize(fixture_folder / "test.txt", vocabulary, max_tokens=5)
    assert text.tokens == ["the", "bird", "flew", EOS, "the"]


def test_vocabulary_file_round_trips(fixture_folder: Path, tmp_path: Path) -> None:
    vocabulary = vocabulary_from_folder(fixture_folder)
    write_vocabulary(vocabulary, tmp_path / "vocab.txt")
    assert load_vocabulary(tmp_path / "vocab.txt").words == vocabulary.words


@pytest.mark.parametrize(
    "content, message",
    [(b"", "no words"), (b"\n\n", "no words"), (b"\xff\xfe bad", "not UTF-8"),
     (b"ab\x00\x01cd", "binary")],
)
def test_bad_texts_fail_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    vocabulary = vocabulary_from_file(_write(tmp_path / "v.txt", "ab cd\n"))
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ReportgenError, match=message):
        tokenize(path, vocabulary)


def test_data_folder_missing_a_split_says_which(tmp_path: Path) -> None:
    _write(tmp_path / "train.txt", "a\n")
    with pytest.raises(ReportgenError, match="missing valid.txt, test.txt"):
        vocabulary_from_folder(tmp_path)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_lines_split_as_text_mode_splits_them(tmp_path: Path) -> None:
    """pytorch/examples reads in text mode: "\\r\\n", a lone "\\r" and "\\n" each end a line."""
    raw = "a b\r\nc\rd e\n\rf\u2028g\r".encode()
    path = tmp_path / "t.txt"
    path.write_bytes(raw)
    with open(path, encoding="utf8") as handle:
        expected = list(enumerate(handle, start=1))
    assert list(read_lines(path)) == expected


def test_text_hash_covers_the_whole_file_past_max_tokens(fixture_folder: Path) -> None:
    vocabulary = vocabulary_from_folder(fixture_folder)
    path = fixture_folder / "test.txt"
    text = tokenize(path, vocabulary, max_tokens=2)
    assert text.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fifo_is_read_once(fixture_folder: Path, tmp_path: Path) -> None:
    vocabulary = vocabulary_from_folder(fixture_folder)
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    content = b"the cat\n" * 1000

    def write() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(content)

    with ThreadPoolExecutor(1) as pool:
        written = pool.submit(write)
        text = tokenize(fifo, vocabulary, max_tokens=3)
        written.result(timeout=10)
    assert text.tokens == ["the", "cat", EOS]
    assert text.sha256 == hashlib.sha256(content).hexdigest()


def test_an_endless_line_is_refused_with_bounded_memory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "MAX_LINE_BYTES", 1000)
    vocabulary = vocabulary_from_file(_write(tmp_path / "v.txt", "a\n"))
    path = tmp_path / "long.txt"
    path.write_bytes(b"a\n" + b"a " * 600)
    with pytest.raises(ReportgenError, match=r"long\.txt:2: a line longer than"):
        tokenize(path, vocabulary, max_tokens=2)


def test_a_text_beyond_the_size_limit_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 1000)
    vocabulary = vocabulary_from_file(_write(tmp_path / "v.txt", "a\n"))
    path = _write(tmp_path / "big.txt", "a a\n" * 300)
    with pytest.raises(ReportgenError, match=r"big\.txt: larger than"):
        tokenize(path, vocabulary, max_tokens=2)  # the hash reads on to the end


@pytest.mark.parametrize("content, says", [
    (b"a\na\n\xe9a\n", r"bad\.txt:3: not UTF-8 text \(byte 0xe9\)"),
    (b"a\na \xc3", r"bad\.txt:2: not UTF-8 text \(an incomplete character at the end\)"),
])
def test_undecodable_byte_names_its_line(tmp_path: Path, content: bytes, says: str) -> None:
    vocabulary = vocabulary_from_file(_write(tmp_path / "v.txt", "a\n"))
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ReportgenError, match=says):
        tokenize(path, vocabulary)
