"""The tokenized-text gate (task text): Transform's post-transform statistics checked before anything trains.

Why a gate of its own: TFX's BERT example proposed checking the tokenized output with TFDV (one [CLS] and one
[SEP] per sequence, a cap on the [UNK] rate), but a TFDV ``float_domain`` on the per-example ``unk_rate`` fails the
whole run on a single emoji-only row (its rate is 1.0). What says "the text does not match the module's
vocabulary" is the rate over the data: sum of [UNK] word pieces / sum of word pieces, i.e. the ratio of the means
of ``num_unk`` and ``num_tokens`` in the statistics Transform already computes (``disable_statistics=False``).
So the gate reads those statistics and checks:

* every example has exactly one [CLS] and one [SEP] (``num_cls`` / ``num_sep`` min = max = 1): the packing is the
  module's, with one segment;
* the [UNK] rate over all transformed examples is at most ``transform.max_unk_rate`` (default 5 %);
* at least one word piece exists (the texts are not all empty after normalisation).

When they hold it emits the schema again as ``validated_schema``; the Trainer takes its ``schema=`` from that
output, so the Trainer cannot run unless this gate passed (the same pattern as the DataGate before Transform),
on LocalDagRunner and KubeflowV2DagRunner alike. A failure is a :class:`DataValidationError` (exit code 3).
"""

# No `from __future__ import annotations`: TFX's @component reads the annotations as real types.
import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import json  # noqa: E402
import os  # noqa: E402

from absl import logging  # noqa: E402
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter  # noqa: E402
from tfx.dsl.component.experimental.decorators import component  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from graft.components.data_errors import DataValidationError  # noqa: E402

STATS_FILE = "FeatureStats.pb"  # the name Transform writes its post-transform statistics under


# What the gate reads of Transform's statistics: the rest (token-id vectors, the raw text again: StatisticsGen already
# described it) is not computed (``stats_options_updater_fn``, TFX Transform's hook, by dotted path).
CHECKED_FEATURES = ("num_cls", "num_sep", "num_tokens", "num_unk")


def stats_options_updater_fn(stats_type, stats_options):
    """Transform's statistics restricted to what is read: the label before, the token checks after."""
    from tfx.components.transform import stats_options_util

    if stats_type == stats_options_util.StatsType.POST_TRANSFORM:
        stats_options.feature_allowlist = list(CHECKED_FEATURES)
    else:
        stats_options.feature_allowlist = ["label"]
    return stats_options


def read_numeric_stats(stats_uri: str) -> tuple[int, dict[str, dict[str, float]]]:
    """(number of examples, {feature: {min, max, mean}}) from the statistics under ``stats_uri``."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    paths = sorted(tf.io.gfile.glob(os.path.join(stats_uri, STATS_FILE))) or sorted(
        tf.io.gfile.glob(os.path.join(stats_uri, "*", STATS_FILE))
    )
    if not paths:
        raise FileNotFoundError(
            f"no {STATS_FILE} under {stats_uri}: did Transform run with disable_statistics=False?"
        )
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    with tf.io.gfile.GFile(paths[0], "rb") as f:
        stats.ParseFromString(f.read())
    dataset = stats.datasets[0]
    out = {}
    for feat in dataset.features:
        name = ".".join(feat.path.step) or feat.name
        if feat.HasField("num_stats"):
            n = feat.num_stats
            out[name] = {"min": float(n.min), "max": float(n.max), "mean": float(n.mean)}
    return int(dataset.num_examples), out


def token_problems(
    num_examples: int, stats: dict, max_unk_rate: float, vocabulary: str
) -> tuple[list[str], dict]:
    """Every reason to stop, in plain words, and the measured summary."""
    problems: list[str] = []
    for key, what in (("num_cls", "[CLS]"), ("num_sep", "[SEP]")):
        s = stats.get(key)
        if s is None:
            problems.append(
                f"Transform's output has no '{key}' statistics (is the text preprocessing wired?)"
            )
        elif not (s["min"] == 1 and s["max"] == 1):
            problems.append(
                f"examples have {s['min']:g} to {s['max']:g} {what} tokens, not exactly one: the sequence packing "
                "does not follow the module's BERT contract (one segment: [CLS] text [SEP])"
            )
    tokens, unk = stats.get("num_tokens"), stats.get("num_unk")
    summary = {"examples": num_examples}
    if tokens is None or unk is None:
        problems.append("Transform's output has no 'num_tokens' / 'num_unk' statistics")
        return problems, summary
    rate = unk["mean"] / tokens["mean"] if tokens["mean"] > 0 else 0.0
    summary.update(
        {
            "unk_rate": rate,
            "mean_word_pieces": tokens["mean"],
            "max_word_pieces": tokens["max"],
            "cap": max_unk_rate,
        }
    )
    if tokens["mean"] <= 0:
        problems.append("no example has any word piece: the texts are empty after the module's normalisation")
    elif rate > max_unk_rate:
        problems.append(
            f"{100 * rate:.1f}% of word pieces are [UNK] (cap {100 * max_unk_rate:g}%, transform.max_unk_rate): the "
            f"text does not match the module's vocabulary ({vocabulary}); another language or script, or "
            "mojibake? Use a backbone whose vocabulary covers this text, or fix the text's encoding"
        )
    return problems, summary


@component
def TokenGate(  # noqa: N802 (TFX component name)
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    validated_schema: OutputArtifact[standard_artifacts.Schema],
    max_unk_rate: Parameter[float],
    vocabulary: Parameter[str] = "",
) -> None:
    """Stop the run (DataValidationError) when the tokenized text fails its checks; else pass the schema on."""
    import tensorflow as tf

    num_examples, stats = read_numeric_stats(statistics.uri)
    problems, summary = token_problems(
        num_examples, stats, float(max_unk_rate), vocabulary or "its vocab_file"
    )
    validated_schema.set_string_custom_property("graft_token_checks", json.dumps(summary, sort_keys=True))
    if problems:
        head = (
            f"the tokenized text failed {len(problems)} check{'s' if len(problems) != 1 else ''}; nothing was "
            "trained or pushed:"
        )
        message = "\n".join([head, *(f"  {i}. {p}" for i, p in enumerate(problems, 1))])
        logging.info("%s", message)
        raise DataValidationError(message, problems)
    for name in tf.io.gfile.listdir(schema.uri):
        src = os.path.join(schema.uri, name)
        if not tf.io.gfile.isdir(src):
            tf.io.gfile.copy(src, os.path.join(validated_schema.uri, name), overwrite=True)
    logging.info("Tokenized text passed: %s", summary)
