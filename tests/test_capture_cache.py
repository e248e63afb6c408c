"""The disk cache of captures: reused when everything that decides the numbers matches, written
whole or not at all, and kept within its size limit."""

from __future__ import annotations

import errno
import importlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from clitools import assert_one_line_error, run_cli

from reportgen.capture import cache as capture_cache
from reportgen.capture.cache import MARKER, META, PENDING, cached_capture, capture_key, entry_size
from reportgen.capture.cache_contents import format_size
from reportgen.capture.core import CaptureOptions, capture, parse_state_name, state_name
from reportgen.cli.main import main
from reportgen.errors import ReportgenError
from reportgen.inputs.checkpoint import load_checkpoint
from reportgen.inputs.corpus import tokenize, vocabulary_from_folder
from reportgen.runs.report import ReportConfig, build_report
from reportgen.versions import key_versions

capture_module = importlib.import_module("reportgen.capture.core")  # the package exports `capture`

OPTIONS = CaptureOptions(chunk_size=128, progress=False)


@pytest.fixture(scope="module")
def inputs(tiny_model: Path, tiny_corpus: Path):
    loaded = load_checkpoint(tiny_model)
    vocabulary = vocabulary_from_folder(tiny_corpus)
    text = tokenize(tiny_corpus / "test.txt", vocabulary, max_tokens=500)
    return loaded, text, vocabulary.words


def cached(inputs, folder: Path | None, options: CaptureOptions = OPTIONS, limit_gb: float = 20):
    loaded, text, words = inputs
    return cached_capture(loaded.model, text.ids, text.tokens, words, options, loaded.sha256,
                          folder, limit_gb)


def entries(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))


def test_a_second_capture_is_read_from_the_cache(inputs, tmp_path: Path) -> None:
    loaded, text, words = inputs
    first = cached(inputs, tmp_path)
    second = cached(inputs, tmp_path)
    assert not first.reused and second.reused and first.entry == second.entry
    in_memory = capture(loaded.model, text.ids, text.tokens, words, OPTIONS)
    for key, values in in_memory.states.items():
        assert isinstance(second.capture.states[key], np.memmap)
        assert not second.capture.states[key].flags.writeable
        np.testing.assert_array_equal(second.capture.states[key], values)
    np.testing.assert_array_equal(second.capture.log_prob_next, in_memory.log_prob_next)
    np.testing.assert_array_equal(second.capture.top_ids, in_memory.top_ids)
    np.testing.assert_array_equal(second.capture.top_log_probs, in_memory.top_log_probs)
    np.testing.assert_array_equal(second.capture.token_ids, text.ids)
    assert second.capture.tokens == text.tokens


def test_what_changes_the_numbers_changes_the_entry(inputs, tmp_path: Path) -> None:
    loaded, text, words = inputs
    cached(inputs, tmp_path)
    cached(inputs, tmp_path, replace(OPTIONS, dtype="float16"))
    shorter = (loaded, replace(text, ids=text.ids[:400], tokens=text.tokens[:400]), words)
    cached(shorter, tmp_path)
    other_model = (replace(loaded, sha256="0" * 64), text, words)
    cached(other_model, tmp_path)
    assert len(entries(tmp_path)) == 4
    again = cached(inputs, tmp_path, replace(OPTIONS, chunk_size=50, progress=None))
    assert again.reused, "chunk size and progress do not change the numbers"


def test_a_damaged_entry_is_captured_again(inputs, tmp_path: Path) -> None:
    first = cached(inputs, tmp_path)
    state_file = first.entry / "L1-h.npy"
    del first
    state_file.write_bytes(state_file.read_bytes()[:200])
    again = cached(inputs, tmp_path)
    assert not again.reused
    assert again.capture.states[(1, "h")].shape[0] == len(inputs[1].tokens)


@pytest.mark.parametrize("key", [(1, "h"), (1, "c"), (2, "h"), (10, "c"), (123, "h")])
def test_a_state_name_reads_back_as_its_key(key) -> None:
    assert parse_state_name(state_name(key)) == key


@pytest.mark.parametrize("name", ["L0-h", "L1-x", "L01-h", "l1-h", "1-h", "L1h", "L-h", "L1-hc",
                                  "L1-h ", "L1-h/../x", ""])
def test_a_name_state_name_cannot_write_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not a layer and state"):
        parse_state_name(name)


def test_an_entry_that_names_an_unknown_state_is_captured_again(inputs, tmp_path: Path) -> None:
    """The entry's states are read back by their names: one no capture writes is damage."""
    first = cached(inputs, tmp_path)
    meta = json.loads((first.entry / META).read_text(encoding="utf-8"))
    meta["states"] = ["L1-x" if name == "L1-h" else name for name in meta["states"]]
    meta["crc32"]["L1-x.npy"] = meta["crc32"].pop("L1-h.npy")  # the files themselves intact
    (first.entry / META).write_text(json.dumps(meta), encoding="utf-8")
    (first.entry / "L1-h.npy").rename(first.entry / "L1-x.npy")
    again = cached(inputs, tmp_path)
    assert not again.reused
    assert sorted(again.capture.states) == sorted(first.capture.states)


def test_an_interrupted_capture_leaves_no_entry_and_is_cleaned_up(inputs, tmp_path: Path) -> None:
    dead = tmp_path / f"{PENDING}abc-{2**22 + 12345}"  # a pid no process has
    dead.mkdir()
    (dead / MARKER).write_text("reportgen\n")  # the first thing a run writes into it
    (dead / "L1-h.npy").write_bytes(b"partial")
    unmarked = tmp_path / f"{PENDING}def-{2**22 + 12345}"  # killed before it was marked
    unmarked.mkdir()
    result = cached(inputs, tmp_path)
    assert not dead.exists() and not unmarked.exists()
    assert entries(tmp_path) == [result.entry]
    assert not any(path.name.startswith(PENDING) for path in tmp_path.iterdir())


def test_the_least_recently_used_entries_go_beyond_the_limit(inputs, tmp_path: Path) -> None:
    loaded, text, words = inputs
    old = cached(inputs, tmp_path).entry
    newer = cached(inputs, tmp_path, replace(OPTIONS, dtype="float16")).entry
    os.utime(old / META, (1, 1))
    size = entry_size(old)
    shorter = (loaded, replace(text, ids=text.ids[:450], tokens=text.tokens[:450]), words)
    newest = cached(shorter, tmp_path, limit_gb=2 * size / 1e9).entry
    assert entries(tmp_path) == sorted([newer, newest])


def test_no_cache_folder_means_nothing_on_disk(inputs, tmp_path: Path) -> None:
    result = cached(inputs, None)
    assert result.entry is None and not result.reused
    assert isinstance(result.capture.states[(1, "h")], np.ndarray)
    assert not isinstance(result.capture.states[(1, "h")], np.memmap)


def test_a_report_rerun_reuses_the_capture_and_says_so(tiny_model: Path, tiny_corpus: Path,
                                                        tmp_path: Path) -> None:
    config = ReportConfig(checkpoint=tiny_model, data=tiny_corpus, out=tmp_path / "report",
                          max_tokens=300, cache=tmp_path / "cache", embed_states=(), quiet=True)
    config.site.images = False
    build_report(config)
    first = (tmp_path / "report" / "index.html").read_bytes()
    build_report(config)
    record = json.loads((tmp_path / "report" / "data" / "report.json").read_text())
    assert record["capture_reused_from_cache"] is True
    assert (tmp_path / "report" / "index.html").read_bytes() == first
    assert len(entries(tmp_path / "cache")) == 1


def test_the_cli_cache_flags(tiny_model: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    common = ["report", str(tiny_model), "--data", str(tiny_corpus), "--max-tokens", "300",
              "--no-clusters", "--no-images", "--quiet"]
    result = run_cli([*common, "--out", "a", "--cache", "cache"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(entries(tmp_path / "cache")) == 1
    result = run_cli([*common, "--out", "b", "--no-cache"], tmp_path,
                     env={"REPORTGEN_CACHE": str(tmp_path / "other")})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "other").exists()


def test_a_cache_that_cannot_be_written_is_one_line(tiny_model: Path, tiny_corpus: Path,
                                                    tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the cache folder should be")
    result = run_cli(["report", str(tiny_model), "--data", str(tiny_corpus), "--out", "report",
                      "--max-tokens", "300", "--no-clusters", "--no-images", "--quiet",
                      "--cache", "not-a-folder"], tmp_path)
    assert_one_line_error(result, "could not write the capture cache in not-a-folder")
    assert not (tmp_path / "report").exists()


def test_a_full_disk_is_one_error_and_leaves_no_entry(inputs, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Space for each state file is reserved before the capture writes into its mapping, where
    a full disk would kill the process with SIGBUS; here the reservation finds the disk full."""
    def disk_full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", disk_full)
    with pytest.raises(ReportgenError, match="could not write the capture cache in .*No space"):
        cached(inputs, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_pruning_deletes_only_entries_reportgen_made(inputs, tmp_path: Path) -> None:
    """`--cache DIR` may point at a folder of the user's: past the limit, only entries that
    carry reportgen's marker go, never the user's own folders, however old or big."""
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "draft.tex").write_bytes(b"x" * 100_000)
    os.utime(thesis, (1, 1))
    looks_pending = tmp_path / f"{PENDING}photos-{2**22 + 12345}"  # a dead pid, but not ours
    looks_pending.mkdir()
    (looks_pending / "cat.jpg").write_bytes(b"jpeg")
    first = cached(inputs, tmp_path).entry
    os.utime(first / META, (2, 2))
    second = cached(inputs, tmp_path, replace(OPTIONS, dtype="float16"), limit_gb=1e-9).entry
    assert (thesis / "draft.tex").stat().st_size == 100_000
    assert (looks_pending / "cat.jpg").read_bytes() == b"jpeg"
    assert not first.exists(), "an entry reportgen made goes past the limit"
    assert (second / MARKER).is_file()


def test_an_entry_made_before_markers_gets_one_when_reused(inputs, tmp_path: Path) -> None:
    entry = cached(inputs, tmp_path).entry
    (entry / MARKER).unlink()
    again = cached(inputs, tmp_path)
    assert again.reused and (entry / MARKER).is_file()


def test_a_folder_named_like_an_entry_without_the_marker_is_left_alone(inputs,
                                                                       tmp_path: Path) -> None:
    entry = cached(inputs, tmp_path).entry
    (entry / MARKER).unlink()
    (entry / META).write_text("not json", encoding="utf-8")  # unreadable, but not ours
    with pytest.raises(ReportgenError, match="could not be read back"):
        cached(inputs, tmp_path)
    assert (entry / META).read_text(encoding="utf-8") == "not json"


def test_damaged_data_behind_an_intact_header_is_captured_again(inputs, tmp_path: Path) -> None:
    """A few bytes changed in the middle of a state file leave its header and size intact, so
    only a checksum can tell: the entry must be captured again, not reused with wrong numbers."""
    first = cached(inputs, tmp_path)
    expected = np.array(first.capture.states[(1, "h")])
    state_file = first.entry / "L1-h.npy"
    del first
    data = bytearray(state_file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(8 * [0x7F])
    state_file.write_bytes(bytes(data))
    again = cached(inputs, tmp_path)
    assert not again.reused
    np.testing.assert_array_equal(again.capture.states[(1, "h")], expected)
    assert cached(inputs, tmp_path).reused  # the new entry checks out


def test_the_capture_key_holds_the_library_versions_and_the_capture_code(
        inputs, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgrade of reportgen or torch, or a changed constant of the capture code, is another
    capture: the cache cannot hand back states that today's code would not compute."""
    loaded, text, words = inputs

    def key() -> str:
        return capture_key(loaded.sha256, text.ids, text.tokens, words, OPTIONS).digest()

    first = key()
    versions = key_versions()
    assert {"reportgen", "numpy", "scipy", "torch", "openTSNE", "fastcluster",
            "scikit-learn"} <= set(versions)
    for library in ("reportgen", "torch"):
        with monkeypatch.context() as patch:
            patch.setattr(capture_cache, "key_versions", lambda: {**versions, library: "0.0"})
            assert key() != first, library
    with monkeypatch.context() as patch:
        patch.setattr(capture_module, "LOG_PROBS_PER_BLOCK", 1 << 20)
        assert key() != first
    assert key() == first


def test_a_run_says_where_its_capture_is_cached_and_the_cache_lists_and_clears(
        tiny_model: Path, tiny_corpus: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The cache grows unseen otherwise (ten reports left 644 MB): a run's last lines name its
    entry and the cache's size, `cache list` shows each entry's size, model, text and age, and
    `cache clear` removes reportgen's entries only."""
    cache = tmp_path / "cache"
    foreign = cache / "my-notes"  # the user's own folder inside --cache: never listed or removed
    foreign.mkdir(parents=True)
    (foreign / "meta.json").write_text("{}", encoding="utf-8")
    assert main(["report", str(tiny_model), "--data", str(tiny_corpus), "--max-tokens", "300",
                 "--no-clusters", "--no-images", "--ablation-tokens", "0", "--quiet",
                 "--cache", str(cache), "--out", str(tmp_path / "report")]) == 0
    (entry,) = [path for path in cache.iterdir() if path != foreign]
    size = sum(path.stat().st_size for path in entry.rglob("*") if path.is_file())
    last = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last[0] == f"capture cached in {entry}"
    assert last[1].startswith(f"capture cache: {cache} holds 1 capture, {format_size(size)}")

    assert main(["cache", "list", "--cache", str(cache)]) == 0
    listed = capsys.readouterr().out.strip().splitlines()
    assert len(listed) == 2 and listed[0].startswith(entry.name)
    assert format_size(size) in listed[0] and "used 0.0 days ago" in listed[0]
    assert str(tiny_model.resolve()) in listed[0] and "300 tokens" in listed[0]
    assert str((tiny_corpus / "test.txt").resolve()) in listed[0]

    assert main(["cache", "clear", "--older-than", "1", "--cache", str(cache)]) == 0
    assert capsys.readouterr().out.startswith("removed 0 entries") and entry.is_dir()
    old = time.time() - 3 * 86400
    os.utime(entry / META, (old, old))
    assert main(["cache", "clear", "--older-than", "2", "--cache", str(cache)]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 entry, {format_size(size)}")
    assert sorted(cache.iterdir()) == [foreign] and (foreign / "meta.json").is_file()
    assert main(["cache", "clear", "--cache", str(cache)]) == 0
    assert foreign.is_dir()


def test_a_vocabulary_in_the_wrong_order_is_flagged_against_a_unigram_model(
        tiny_model: Path, tiny_corpus: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same words in another order pass every size check, and the model then predicts
    worse than the text's own word counts: stderr warns and the overview says so, asking
    whether the vocabulary is in training order; the right order says nothing."""
    words = load_checkpoint(tiny_model).vocabulary
    permuted = tmp_path / "permuted.txt"
    order = np.random.default_rng(0).permutation(len(words))
    permuted.write_text("".join(f"{words[i]}\n" for i in order), encoding="utf-8")
    base = ["report", str(tiny_model), "--text", str(tiny_corpus / "test.txt"),
            "--max-tokens", "500", "--no-clusters", "--no-images", "--ablation-tokens", "0",
            "--quiet", "--no-cache"]
    assert main([*base, "--vocabulary", str(permuted), "--out", str(tmp_path / "wrong")]) == 0
    stderr = capsys.readouterr().err
    summary = json.loads((tmp_path / "wrong" / "data" / "report.json").read_text())["model"]
    assert summary["perplexity"] > summary["unigram_perplexity"] > 1
    assert "worse than that of a unigram model of the text's own word counts" in stderr
    assert "is the vocabulary in the order the model was trained with? --data DIR" in stderr
    page = (tmp_path / "wrong" / "index.html").read_text(encoding="utf-8")
    assert 'id="worse-than-unigram"' in page and "--data DIR rebuilds it" in page

    assert main([*base, "--out", str(tmp_path / "right")]) == 0
    assert "unigram" not in capsys.readouterr().err
    right = json.loads((tmp_path / "right" / "data" / "report.json").read_text())["model"]
    assert right["perplexity"] < right["unigram_perplexity"]
    assert 'id="worse-than-unigram"' not in (tmp_path / "right" / "index.html").read_text()
