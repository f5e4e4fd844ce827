"""data.span_width: the digits of span-N/ folder names, declared so that the span pattern need not be read from
data.path (TFX fills a bare ``{SPAN}`` unpadded: span-007 needs ``{SPAN:3}``)."""

from __future__ import annotations

import pytest

from graft.components.image_example_gen.config import DataConfig
from graft.components.image_example_gen.layout import declared_layout, detect_layout, span_prefix
from graft.settings import ConfigError


def test_span_prefix_from_the_width_or_the_folder_name():
    assert span_prefix(0) == "span-{SPAN}"
    assert span_prefix(3) == "span-{SPAN:3}"
    assert span_prefix(None, "007") == "span-{SPAN:3}"
    assert span_prefix(None, "7") == "span-{SPAN}"
    assert span_prefix(None, "12") == "span-{SPAN}"


def test_declared_width_gives_a_span_layout_without_looking(tmp_path):
    missing = tmp_path / "not_there"  # never listed: a declared layout does not look
    lay = declared_layout(DataConfig(path=str(missing), format="folders", span_width=3))
    assert lay is not None and lay.spans and lay.span_seen is None
    assert lay.patterns == {"single_split": "span-{SPAN:3}/*/*"}
    assert (
        declared_layout(DataConfig(path=str(missing), format="folders")) is None
    )  # width unknown: must look


def test_a_declared_width_wins_over_the_folder_name_when_the_data_is_read(tmp_path):
    (tmp_path / "span-007" / "cat").mkdir(parents=True)
    (tmp_path / "span-007" / "cat" / "a.png").write_bytes(b"x")
    assert detect_layout(DataConfig(path=str(tmp_path), format="folders")).patterns == {
        "single_split": "span-{SPAN:3}/*/*"
    }
    lay = detect_layout(DataConfig(path=str(tmp_path), format="folders", span_width=3))
    assert lay.spans and lay.span_seen == 7 and lay.patterns == {"single_split": "span-{SPAN:3}/*/*"}


@pytest.mark.parametrize("bad", [-1, 19])
def test_a_bad_width_names_the_key(bad):
    with pytest.raises(ConfigError, match=r"data.span_width"):
        DataConfig(path="x", span_width=bad).validate()
