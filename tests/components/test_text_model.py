"""Task text in the components: preprocessing dispatch, the token gate's rules, the text classifier and its signatures
on a tiny real BERT encoder (Graft's own encoder class with random weights, saved and loaded as a SavedModel)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graft  # noqa: F401
from graft.components import preprocessing, token_gate
from graft.components.trainer_config import TrainConfig

SEQ = 16
VOCAB = 64
HIDDEN, LAYERS, INTER = 16, 2, 32


def test_preprocessing_dispatches_on_the_backbone_task():
    assert preprocessing.is_text({"backbone": json.dumps({"task": "text"}), "graft_config": "{}"})
    assert not preprocessing.is_text(
        {"backbone": json.dumps({"height": 32, "width": 32}), "graft_config": "{}"}
    )
    assert not preprocessing.is_text({})


STATS_OK = {
    "num_cls": {"min": 1, "max": 1, "mean": 1},
    "num_sep": {"min": 1, "max": 1, "mean": 1},
    "num_tokens": {"min": 1, "max": 400, "mean": 50.0},
    # one emoji-only row among 100: its own rate is 1.0, the data's is 0.002
    "num_unk": {"min": 0, "max": 10, "mean": 0.1},
}


def test_token_gate_judges_the_unk_rate_over_the_data_not_per_row():
    problems, summary = token_gate.token_problems(100, STATS_OK, 0.05, "vocab.txt")
    assert problems == [] and summary["unk_rate"] == pytest.approx(0.002)


def test_token_gate_stops_on_a_vocabulary_mismatch_and_bad_packing():
    stats = {
        **STATS_OK,
        "num_unk": {"min": 0, "max": 50, "mean": 20.0},
        "num_sep": {"min": 1, "max": 2, "mean": 1.1},
    }
    problems, _ = token_gate.token_problems(100, stats, 0.05, "/m/assets/vocab.txt, lower case True")
    text = "\n".join(problems)
    assert "40.0% of word pieces are [UNK] (cap 5%, transform.max_unk_rate)" in text
    assert "does not match the module's vocabulary (/m/assets/vocab.txt" in text
    assert "[SEP]" in text and len(problems) == 2


def test_transform_statistics_are_restricted_to_what_the_gate_reads():
    import tensorflow_data_validation as tfdv
    from tfx.components.transform import stats_options_util

    post = token_gate.stats_options_updater_fn(
        stats_options_util.StatsType.POST_TRANSFORM, tfdv.StatsOptions()
    )
    pre = token_gate.stats_options_updater_fn(stats_options_util.StatsType.PRE_TRANSFORM, tfdv.StatsOptions())
    assert post.feature_allowlist == ["num_cls", "num_sep", "num_tokens", "num_unk"]
    assert pre.feature_allowlist == ["label"]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 2-layer BERT encoder of Graft's own class (bert_encoder.py), random weights, as a TF Hub SavedModel."""
    import tensorflow as tf

    from graft.components.backbones import bert_encoder as be

    cfg = be.BertConfig(VOCAB, HIDDEN, LAYERS, 2, INTER, 64, 2)
    rng = np.random.RandomState(0)
    shapes = {
        "embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
        "embeddings.position_embeddings.weight": (64, HIDDEN),
        "embeddings.token_type_embeddings.weight": (2, HIDDEN),
        "embeddings.LayerNorm.weight": (HIDDEN,),
        "embeddings.LayerNorm.bias": (HIDDEN,),
        "pooler.dense.weight": (HIDDEN, HIDDEN),
        "pooler.dense.bias": (HIDDEN,),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ):
            shapes[p + part + ".weight"], shapes[p + part + ".bias"] = (HIDDEN, HIDDEN), (HIDDEN,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + ln + ".weight"], shapes[p + ln + ".bias"] = (HIDDEN,), (HIDDEN,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (
            (INTER, HIDDEN),
            (INTER,),
        )
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (HIDDEN, INTER), (HIDDEN,)
    tensors = {k: rng.normal(0, 0.2, s).astype(np.float32) for k, s in shapes.items()}
    weights = be.checkpoint_weights(tensors, cfg)
    module = be.encoder_module_class()(weights, cfg, name="tiny_bert")
    specs = be.encoder_input_specs()
    module.__call__.get_concrete_function(specs, training=False)
    module.__call__.get_concrete_function(specs, training=True)
    path = tmp_path_factory.mktemp("tiny_bert") / "encoder"
    tf.saved_model.save(module, str(path))
    info = {
        "task": "text",
        "handle": "tiny-bert",
        "path": str(path),
        "seq_length": SEQ,
        "output_key": "mean_pooled_output",
    }
    return info, [n for n, _ in weights]


def _batch(n=4):
    rng = np.random.RandomState(1)
    ids = rng.randint(5, VOCAB, (n, SEQ)).astype(np.int64)
    mask = np.ones((n, SEQ), np.int64)
    mask[:, SEQ // 2 :] = 0
    return {"input_word_ids": ids * mask, "input_mask": mask, "input_type_ids": np.zeros((n, SEQ), np.int64)}


def test_text_classifier_mean_pools_and_fine_tunes_the_top_blocks_in_layer_order(tiny_encoder):
    import tensorflow as tf

    from graft.components import feature_cache
    from graft.components import model as model_lib

    info, names = tiny_encoder
    model = model_lib.build_text_classifier(info, 3, TrainConfig(fine_tune_fraction=0.3))
    assert model(_batch(), training=False).shape == (4, 3)
    layer = model_lib.backbone_layer(model)
    # Depth order = the encoder's layer order: embeddings, layer_0, layer_1, pooler (read last).
    assert [v.name.split(":")[0] for v in layer.backbone_trainable_variables] == names
    chosen = [v.name.split(":")[0] for v in layer.fine_tune_variables]
    assert chosen == names[-len(chosen) :] and all(
        "layer_0" not in n and "embeddings" not in n for n in chosen
    )
    model_lib.set_phase(model, 1)
    assert not layer.trainable_weights
    model_lib.set_phase(model, 2)
    assert len(layer.trainable_weights) == len(chosen)
    # The cached-features extractor is the model's own graph up to the sentence embedding (the masked mean).
    feats = feature_cache.feature_extractor(model)(_batch(), training=False).numpy()
    enc = tf.saved_model.load(info["path"])
    b = {k: tf.constant(v, tf.int32) for k, v in _batch().items()}
    np.testing.assert_allclose(feats, enc(b, training=False)["mean_pooled_output"].numpy(), atol=1e-5)
    check = feature_cache.sanity_check(
        feats, value_range=None, range_source="text", handle="tiny-bert", text=True
    )
    assert check["value_range"] is None and check["relative_spread"] > 0


def test_batches_cut_to_their_longest_row_change_no_output(tiny_encoder):
    """text_preprocessing.trim_to_longest: the columns after the batch's last real word piece are inert (mask 0)
    for the encoder's attention and its mean pooling, so the cut batch gives the same logits as the padded one."""
    import tensorflow as tf

    from graft.components import model as model_lib
    from graft.components.text_preprocessing import TRIM_MULTIPLE, trim_to_longest

    info, _ = tiny_encoder
    model = model_lib.build_text_classifier(info, 3, TrainConfig())
    full = _batch()
    full["input_mask"][0, : SEQ // 2 + 3] = 1  # the longest row: SEQ/2 + 3 real word pieces
    full["input_word_ids"][0, SEQ // 2 : SEQ // 2 + 3] = 7
    cut = trim_to_longest({k: tf.constant(v) for k, v in full.items()}, multiple=4)
    want = -(-(SEQ // 2 + 3) // 4) * 4
    assert all(int(v.shape[1]) == want for v in cut.values()) and want < SEQ
    np.testing.assert_allclose(
        model(cut, training=False).numpy(), model(full, training=False).numpy(), atol=1e-5
    )
    # Never longer than the stored width, never shorter than the multiple.
    assert int(trim_to_longest({k: tf.constant(v) for k, v in full.items()}, multiple=SEQ * 2)["input_mask"].shape[1]) == SEQ  # fmt: skip
    empty = {k: tf.zeros((2, SEQ), tf.int64) for k in full}
    assert int(trim_to_longest(empty)["input_mask"].shape[1]) == min(SEQ, TRIM_MULTIPLE)
