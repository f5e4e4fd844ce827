"""Transform's text preprocessing: the module's own tokenizer (read from it), token ids equal to the module's,
and the TFDV-checkable outputs ([CLS]/[SEP] per sequence, [UNK] rate), in a real tf.Transform Beam run."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import graft  # noqa: F401
from graft.components import text_preprocessing as tp
from graft.components.backbones import text_builds, text_ops
from graft.components.backbones.text_resolve import resolve_text_backbone


def imdb() -> list[str]:
    spec = importlib.util.find_spec("tfx")
    path = Path(next(iter(spec.submodule_search_locations))) / "examples/imdb/data/imdb_small_with_labels.txt"
    with open(path, newline="", encoding="utf-8") as f:
        return [r["text"] for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tp_cache")
    enc, pre = text_builds.build_minilm(64, out_dir=cache / "graft")
    return resolve_text_backbone(str(enc), preprocess_handle=str(pre))


def test_token_ids_equal_the_modules_and_checks_hold(info):
    import tensorflow as tf
    import tensorflow_hub as hub

    text_ops.register_ops()
    texts = imdb()[:40] + ["ภาษาไทยเป็นภาษาที่สวยงามมาก"]
    out = tp.text_features(tf.constant(texts), info)
    ref = hub.load(info.preprocess_path)(tf.constant(texts))
    for k in ("input_word_ids", "input_mask", "input_type_ids"):
        np.testing.assert_array_equal(out[k].numpy(), ref[k].numpy())
        assert out[k].shape == (41, 64)
    assert set(out["num_cls"].numpy()) == {1} and set(out["num_sep"].numpy()) == {1}
    rates = out["unk_rate"].numpy()
    assert (
        rates[:40].max() < tp.DEFAULT_MAX_UNK_RATE < rates[40]
    )  # English reviews vs a script the vocab lacks
    assert (out["num_tokens"].numpy()[:40] > 64).any()  # long reviews: counted before truncation


def test_in_a_real_transform_run(info, tmp_path):
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    texts = imdb()[:16]
    meta = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec({"text": tf.io.FixedLenFeature([], tf.string)})
    )
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=str(tmp_path / "tft"), force_tf_compat_v1=False):
        raw = p | beam.Create([{"text": t} for t in texts])
        (transformed, _), _fn = (raw, meta) | tft_beam.AnalyzeAndTransformDataset(
            tp.preprocessing_fn_for(info)
        )
        _ = (
            transformed
            | beam.Map(lambda d: json.dumps({k: np.asarray(v).tolist() for k, v in d.items()}))
            | beam.io.WriteToText(str(tmp_path / "out"), file_name_suffix=".jsonl", shard_name_template="")
        )
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(got) == 16 and all(g["num_cls"] == 1 and g["num_sep"] == 1 for g in got)
    expected = sorted(tp.text_features(tf.constant(texts), info)["input_word_ids"].numpy().tolist())
    assert sorted(list(g["input_word_ids"]) for g in got) == expected


def test_checks_schema_bounds():
    schema = tp.tokenized_checks_schema(128, max_unk_rate=0.1)
    f = {x.name: x for x in schema.feature}
    assert (f["num_cls"].int_domain.min, f["num_cls"].int_domain.max) == (1, 1)
    assert f["unk_rate"].float_domain.max == pytest.approx(0.1)
    assert f["input_word_ids"].shape.dim[0].size == 128
