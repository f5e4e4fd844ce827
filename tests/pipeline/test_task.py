"""Task detection (``task: auto | image | text``), the text config keys, and the text DAG's cache keys: cheap."""

from __future__ import annotations

import pytest
from data_helpers import make_tree

from graft.pipeline import task as task_mod
from graft.pipeline.config import ConfigError, GraftConfig, load_config


def _cfg(data, handle, task="auto") -> GraftConfig:
    return load_config(flags={"data.path": str(data), "backbone.handle": handle, "task": task})


def _glue(root):
    root.mkdir(parents=True, exist_ok=True)
    for name in ("train", "test"):
        (root / f"{name}.tsv").write_text("sentence\tlabel\na fine film\tpositive\na dull film\tnegative\n")
    return root


def test_auto_detects_text_from_the_backbone_and_the_data(tmp_path):
    data = _glue(tmp_path / "glue")
    assert task_mod.detect_task(_cfg(data, "minilm_l6")) == "text"
    assert (
        task_mod.detect_task(_cfg(data, "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"))
        == "text"
    )
    images = tmp_path / "images"
    make_tree(images, per_class=2)
    assert task_mod.detect_task(_cfg(images, "tiny")) == "image"
    assert task_mod.data_kind(str(data)) == "text" and task_mod.data_kind(str(images)) == "image"


def test_text_backbone_on_image_folders_is_one_sentence_naming_both(tmp_path):
    images = tmp_path / "images"
    make_tree(images, per_class=2)
    with pytest.raises(ConfigError) as e:
        task_mod.detect_task(_cfg(images, "minilm_l6"))
    msg = str(e.value)
    assert "'task'" in msg and "image files" in msg and "minilm_l6" in msg and "a text encoder" in msg
    assert "mobilenet_v1_imagenet" in msg  # the fix
    with pytest.raises(ConfigError, match="text files"):
        task_mod.detect_task(_cfg(_glue(tmp_path / "glue"), "tiny"))


def test_explicit_task_contradicting_the_backbone_names_the_key(tmp_path):
    with pytest.raises(
        ConfigError, match=r"config key 'task': 'text', but backbone.handle 'tiny' is an image"
    ):
        task_mod.detect_task(_cfg(_glue(tmp_path / "g"), "tiny", task="text"))
    # A gs:// module cannot be told apart without reading it: the explicit task decides.
    cfg = _cfg("gs://bucket/reviews.tsv", "gs://bucket/hub/my_bert", task="text")
    assert task_mod.detect_task(cfg) == "text"
    assert task_mod.detect_task(_cfg("gs://bucket/reviews.tsv", "gs://bucket/hub/my_bert")) == "image"


def test_text_config_keys_are_typed_and_named():
    cfg = GraftConfig()
    assert (cfg.task, cfg.backbone.seq_length, cfg.transform.max_unk_rate) == ("auto", 128, 0.05)
    assert (cfg.data.text_column, cfg.data.label_column, cfg.data.max_text_bytes) == ("", "", 100_000)
    with pytest.raises(ConfigError) as e:
        load_config(
            overrides=[
                "task=audio",
                "backbone.seq_length=4",
                "transform.max_unk_rate=0",
                "data.max_text_bytes=0",
            ]
        )
    msg = str(e.value)
    for key in ("task", "backbone.seq_length", "transform.max_unk_rate", "data.max_text_bytes"):
        assert key in msg


def test_tflite_is_skipped_for_text_and_an_explicit_list_is_refused():
    from graft.pipeline import dag

    cfg = GraftConfig()
    assert dag.edge_variants(cfg, "text") == [] and dag.edge_variants(cfg, "image") == cfg.edge.variants
    cfg.edge.variants = ["int8"]
    with pytest.raises(ConfigError, match=r"config key 'edge.variants'.*task text"):
        dag.edge_variants(cfg, "text")
    cfg.edge.variants = []
    assert dag.edge_variants(cfg, "text") == []


TEXT_INFO = {
    "task": "text",
    "handle": "minilm_l6",
    "path": "/cache/minilm_l6",
    "vocab_file": "/cache/minilm_l6_preprocess_32/assets/vocab.txt",
    "lower_case": True,
    "normalization": "bert",
    "seq_length": 32,
    "pad_id": 0,
    "unk_id": 100,
    "cls_id": 101,
    "sep_id": 102,
    "feature_size": 384,
    "fingerprint": "abc",
}


def test_transform_cache_key_holds_the_tokenizer_only():
    import json

    from graft.pipeline import dag

    cfg = GraftConfig()
    base = dag.transform_custom_config(cfg, TEXT_INFO)
    assert set(json.loads(base["backbone"])) == {
        "task", "vocab_file", "lower_case", "normalization", "seq_length", "pad_id", "unk_id", "cls_id", "sep_id"
    }  # fmt: skip
    cfg.transform.max_unk_rate = 0.2  # the TokenGate's knob: Transform stays cached
    cfg.train.batch_size = 8
    assert dag.transform_custom_config(cfg, {**TEXT_INFO, "fingerprint": "other"}) == base
    assert dag.transform_custom_config(cfg, {**TEXT_INFO, "seq_length": 64}) != base
