"""A BERT encoder in plain TensorFlow, loaded from a Hugging Face BERT checkpoint (``model.safetensors``).

Why plain TF ops and not Keras layers: the module is exported as a TF Hub reusable SavedModel (variables in depth
order, ``__call__`` traced with ``training`` True/False), exactly like Graft's image modules, so only variables and
traced functions are saved: no per-layer Keras serialization, nothing Keras-3 specific.

The computation is Hugging Face's ``BertModel`` (post-LayerNorm BERT): word + position + token-type embeddings ->
LayerNorm -> N x [self-attention -> dense -> dropout -> LayerNorm(residual); dense -> exact-erf GELU -> dense ->
dropout -> LayerNorm(residual)] -> ``sequence_output``; ``pooled_output`` = tanh(dense(first token)). Attention to
padding is masked with an additive -10000 (``exp`` underflows to exactly 0 in float32). Torch ``Linear`` weights are
``[out, in]`` and are transposed once, at build time.

Outputs follow TF Hub's BERT encoder contract (``pooled_output``, ``sequence_output``, ``encoder_outputs``,
``default``) plus ``mean_pooled_output``: the mask-weighted mean of ``sequence_output``, the sentence embedding
that sentence-transformers models such as all-MiniLM-L6-v2 were trained to produce (their ``Pooling`` module,
before ``Normalize``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

import graft  # noqa: F401  (legacy Keras before TensorFlow)

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
MASK_BIAS = -10000.0


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT ``config.json`` the encoder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    hidden_act: str = "gelu"

    @classmethod
    def from_json_dict(cls, d: dict) -> BertConfig:
        if d.get("model_type", "bert") != "bert" or d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(
                f"only BERT checkpoints with exact GELU are supported (model_type={d.get('model_type')!r}, "
                f"hidden_act={d.get('hidden_act')!r})"
            )
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"position_embedding_type {d['position_embedding_type']!r} is not supported")
        names = cls.__dataclass_fields__
        return cls(**{k: d[k] for k in names if k in d})


def checkpoint_weights(tensors: dict[str, np.ndarray], config: BertConfig) -> list[tuple[str, np.ndarray]]:
    """(TF variable name, value) in depth order, from Hugging Face BERT tensor names (a ``bert.`` prefix allowed)."""
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""

    def get(name: str, transpose: bool = False) -> np.ndarray:
        try:
            v = tensors[prefix + name]
        except KeyError:
            raise ValueError(f"the checkpoint has no tensor {prefix + name!r}") from None
        v = np.asarray(v, np.float32)
        return np.ascontiguousarray(v.T) if transpose else v

    out = [
        ("embeddings/word_embeddings", get("embeddings.word_embeddings.weight")),
        ("embeddings/position_embeddings", get("embeddings.position_embeddings.weight")),
        ("embeddings/token_type_embeddings", get("embeddings.token_type_embeddings.weight")),
        ("embeddings/layer_norm/gamma", get("embeddings.LayerNorm.weight")),
        ("embeddings/layer_norm/beta", get("embeddings.LayerNorm.bias")),
    ]
    for i in range(config.num_hidden_layers):
        hf, tf_ = f"encoder.layer.{i}.", f"transformer/layer_{i}/"
        for part, hf_part in (
            ("attention/query", "attention.self.query"),
            ("attention/key", "attention.self.key"),
            ("attention/value", "attention.self.value"),
            ("attention/output", "attention.output.dense"),
        ):
            out.append((tf_ + part + "/kernel", get(hf + hf_part + ".weight", transpose=True)))
            out.append((tf_ + part + "/bias", get(hf + hf_part + ".bias")))
        out += [
            (tf_ + "attention/layer_norm/gamma", get(hf + "attention.output.LayerNorm.weight")),
            (tf_ + "attention/layer_norm/beta", get(hf + "attention.output.LayerNorm.bias")),
            (tf_ + "intermediate/kernel", get(hf + "intermediate.dense.weight", transpose=True)),
            (tf_ + "intermediate/bias", get(hf + "intermediate.dense.bias")),
            (tf_ + "output/kernel", get(hf + "output.dense.weight", transpose=True)),
            (tf_ + "output/bias", get(hf + "output.dense.bias")),
            (tf_ + "output/layer_norm/gamma", get(hf + "output.LayerNorm.weight")),
            (tf_ + "output/layer_norm/beta", get(hf + "output.LayerNorm.bias")),
        ]
    out += [
        ("pooler/kernel", get("pooler.dense.weight", transpose=True)),
        ("pooler/bias", get("pooler.dense.bias")),
    ]
    expected = {
        "embeddings/word_embeddings": (config.vocab_size, config.hidden_size),
        "embeddings/position_embeddings": (config.max_position_embeddings, config.hidden_size),
        "transformer/layer_0/intermediate/kernel": (config.hidden_size, config.intermediate_size),
    }
    for name, value in out:
        if name in expected and value.shape != expected[name]:
            raise ValueError(f"{name}: shape {value.shape} does not match config.json {expected[name]}")
    return out


def encoder_input_specs():
    import tensorflow as tf

    return {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in INPUT_KEYS}


@functools.cache
def encoder_module_class():
    """The tf.Module class of the encoder (defined on first use: TensorFlow is not imported with this module)."""
    import tensorflow as tf

    def layer_norm(x, gamma, beta, eps):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + eps) * gamma + beta

    class BertEncoderModule(tf.Module):
        """TF Hub BERT encoder: ``__call__(dict(input_word_ids, input_mask, input_type_ids), training=False)``.

        ``variables`` / ``trainable_variables`` are shadowed as lists in depth order (embeddings -> layer 0 ->
        ... -> pooler): the Trainer fine-tunes the top fraction of this list.
        """

        variables = None
        trainable_variables = None

        def __init__(self, weights: list[tuple[str, np.ndarray]], config: BertConfig, name: str = "bert"):
            super().__init__(name=name)
            self._config = config
            self.variables = [tf.Variable(v, name=n, trainable=True) for n, v in weights]
            self.trainable_variables = list(self.variables)
            self.regularization_losses = []
            self._by_name = {n: v for (n, _), v in zip(weights, self.variables, strict=False)}
            self.__call__ = tf.function(self._call)

        def _call(self, inputs, training=False):
            cfg, w = self._config, self._by_name
            ids = tf.cast(inputs["input_word_ids"], tf.int32)
            mask = tf.cast(inputs["input_mask"], tf.float32)
            types = tf.cast(inputs["input_type_ids"], tf.int32)
            seq_len = tf.shape(ids)[1]
            heads, hidden = cfg.num_attention_heads, cfg.hidden_size
            head_size = hidden // heads

            def dropout(x, rate):
                return tf.nn.dropout(x, rate) if training and rate > 0 else x

            x = (
                tf.gather(w["embeddings/word_embeddings"], ids)
                + w["embeddings/position_embeddings"][tf.newaxis, :seq_len]
                + tf.gather(w["embeddings/token_type_embeddings"], types)
            )
            eps = cfg.layer_norm_eps
            x = layer_norm(x, w["embeddings/layer_norm/gamma"], w["embeddings/layer_norm/beta"], eps)
            x = dropout(x, cfg.hidden_dropout_prob)
            bias = (1.0 - mask[:, tf.newaxis, tf.newaxis, :]) * MASK_BIAS
            batch = tf.shape(ids)[0]

            def dense(t, prefix):
                return tf.matmul(t, w[prefix + "/kernel"]) + w[prefix + "/bias"]

            def split_heads(t):
                return tf.transpose(tf.reshape(t, [batch, seq_len, heads, head_size]), [0, 2, 1, 3])

            encoder_outputs = []
            for i in range(cfg.num_hidden_layers):
                p = f"transformer/layer_{i}/"
                q = split_heads(dense(x, p + "attention/query"))
                k = split_heads(dense(x, p + "attention/key"))
                v = split_heads(dense(x, p + "attention/value"))
                scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_size) + bias
                probs = dropout(tf.nn.softmax(scores, axis=-1), cfg.attention_probs_dropout_prob)
                ctx = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [batch, seq_len, hidden])
                attn = dropout(dense(ctx, p + "attention/output"), cfg.hidden_dropout_prob)
                x = layer_norm(
                    x + attn, w[p + "attention/layer_norm/gamma"], w[p + "attention/layer_norm/beta"], eps
                )
                h = tf.nn.gelu(dense(x, p + "intermediate"), approximate=False)
                h = dropout(dense(h, p + "output"), cfg.hidden_dropout_prob)
                x = layer_norm(x + h, w[p + "output/layer_norm/gamma"], w[p + "output/layer_norm/beta"], eps)
                encoder_outputs.append(x)
            pooled = tf.tanh(dense(x[:, 0], "pooler"))
            weights = mask[:, :, tf.newaxis]
            mean = tf.reduce_sum(x * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1e-9)
            return {
                "pooled_output": pooled,
                "sequence_output": x,
                "mean_pooled_output": mean,
                "encoder_outputs": encoder_outputs,
                "default": pooled,
            }

    return BertEncoderModule
