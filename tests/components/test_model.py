"""The classifier around hub.KerasLayer: which backbone variables train, BatchNorm frozen, loss, dtypes.

Also holds the helpers test_trainer.py imports: a small TF Hub-format SavedModel (conv + BatchNorm, non-trivial
moving statistics) built here, so these tests do not depend on the offline backbones being built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import graft  # noqa: F401

# isort: split
import tensorflow as tf

from graft.components import model as model_lib
from graft.pipeline.config import GraftConfig, TrainConfig

SIZE = 32


# ---- helpers (also used by test_trainer.py) -------------------------------------------------------------------
def make_test_backbone(path: str | os.PathLike, size: int = SIZE, features: int = 16, seed: int = 0) -> str:
    """A TF Hub-format image feature-vector SavedModel: float32 [B, size, size, 3] in [0, 1] -> [B, features].

    Reusable-SavedModel API: ``__call__(x, training)`` traced for both values of training, ``variables``,
    ``trainable_variables`` (listed in *reverse* depth order on purpose), ``regularization_losses``. Two conv +
    BatchNorm blocks whose moving statistics are random, so a BatchNorm update would show.
    """
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input([size, size, 3])
    x = tf.keras.layers.Conv2D(8, 3, strides=2, name="block1_conv")(inputs)
    x = tf.keras.layers.BatchNormalization(name="block1_bn")(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.Conv2D(features, 3, strides=2, name="block2_conv")(x)
    x = tf.keras.layers.BatchNormalization(name="block2_bn")(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    net = tf.keras.Model(inputs, x)
    for layer in net.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.moving_mean.assign(tf.random.normal(layer.moving_mean.shape, stddev=0.1))
            layer.moving_variance.assign(tf.random.uniform(layer.moving_variance.shape, 0.5, 2.0))
    root = tf.train.Checkpoint(net=net)
    root.variables = list(net.variables)
    root.trainable_variables = list(reversed(net.trainable_variables))
    root.regularization_losses = []
    fn = tf.function(lambda images, training=False: net(images, training=training))
    for training in (False, True):
        fn.get_concrete_function(tf.TensorSpec([None, size, size, 3], tf.float32), training)
    root.__call__ = fn
    tf.saved_model.save(root, str(path))
    return str(path)


def backbone_spec(path: str, size: int = SIZE, value_range=(0.0, 1.0)):
    return types.SimpleNamespace(
        handle=f"test:{path}", path=path, height=size, width=size, value_range=value_range
    )


def train_cfg(**overrides) -> TrainConfig:
    cfg = GraftConfig().train
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.validate()
    return cfg


def snapshot(variables) -> dict[str, np.ndarray]:
    return {v.name: v.numpy().copy() for v in variables}


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory) -> str:
    return make_test_backbone(tmp_path_factory.mktemp("backbone") / "module")


def _random_data(n=48, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
    # Make the classes learnable: each class brightens one channel.
    for i, c in enumerate(labels):
        images[i, :, :, c] = np.clip(images[i, :, :, c].astype(int) + 90, 0, 255)
    return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64))).batch(16)


# ---- variable order and selection --------------------------------------------------------------------------------
def test_variables_by_depth_follows_first_use_not_list_order(backbone_dir):
    module = tf.saved_model.load(backbone_dir)
    listed = [v.name for v in module.trainable_variables]
    ordered = [v.name for v in model_lib.variables_by_depth(module)]
    assert listed[0].startswith("block2_bn")  # the module lists them deepest first on purpose
    assert ordered == [
        "block1_conv/kernel:0",
        "block1_conv/bias:0",
        "block1_bn/gamma:0",
        "block1_bn/beta:0",
        "block2_conv/kernel:0",
        "block2_conv/bias:0",
        "block2_bn/gamma:0",
        "block2_bn/beta:0",
    ]


def test_variables_by_depth_falls_back_to_list_order_without_traced_call():
    class Plain(tf.Module):
        def __init__(self):
            self.a = tf.Variable(1.0, name="a")
            self.b = tf.Variable(2.0, name="b")

    m = Plain()
    assert [v.name for v in model_lib.variables_by_depth(m)] == [v.name for v in m.trainable_variables]


@pytest.mark.parametrize("fraction,expected", [(0.0, 0), (0.01, 1), (0.3, 3), (0.5, 4), (0.99, 8), (1.0, 8)])
def test_top_fraction_takes_the_deepest(fraction, expected):
    ordered = [tf.Variable(float(i), name=f"v{i}") for i in range(8)]
    chosen = model_lib.top_fraction(ordered, fraction)
    assert len(chosen) == expected
    assert chosen == ordered[len(ordered) - expected :]


def test_top_fraction_rejects_out_of_range():
    with pytest.raises(ValueError, match="must be in"):
        model_lib.top_fraction([], 1.5)


def test_backbone_layer_exposes_only_the_chosen_variables(backbone_dir):
    model = model_lib.build_classifier(backbone_spec(backbone_dir), 3, train_cfg(fine_tune_fraction=0.3))
    layer = model_lib.backbone_layer(model)
    assert [v.name for v in layer.fine_tune_variables] == [
        "block2_conv/bias:0",
        "block2_bn/gamma:0",
        "block2_bn/beta:0",
    ]
    # Phase 1: only the head trains.
    assert {w.name for w in model.trainable_weights} == {"logits/kernel:0", "logits/bias:0"}
    model_lib.set_phase(model, 2)
    assert {w.name for w in model.trainable_weights} == {
        "block2_conv/bias:0",
        "block2_bn/gamma:0",
        "block2_bn/beta:0",
        "logits/kernel:0",
        "logits/bias:0",
    }
    # Every module variable stays registered (checkpointing, get_weights) exactly once.
    assert len(layer.weights) == len(layer.resolved_object.variables)


# ---- training behaviour -------------------------------------------------------------------------------------------
def _fit(model, phase, lr, epochs=2):
    model_lib.set_phase(model, phase)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(lr), loss=model_lib.make_loss(3), metrics=model_lib.make_metrics()
    )
    return model.fit(_random_data(), epochs=epochs, verbose=0)


def test_phase1_leaves_every_backbone_variable_bit_identical(backbone_dir):
    model = model_lib.build_classifier(backbone_spec(backbone_dir), 3, train_cfg(fine_tune_fraction=0.5))
    layer = model_lib.backbone_layer(model)
    before = snapshot(layer.resolved_object.variables)
    head_before = snapshot(model_lib.head_variables(model))
    _fit(model, 1, 1e-2)
    after = snapshot(layer.resolved_object.variables)
    assert before.keys() == after.keys() and len(before) == 12
    for name in before:
        assert np.array_equal(before[name], after[name]), f"{name} changed in phase 1"
    head_after = snapshot(model_lib.head_variables(model))
    assert any(not np.array_equal(head_before[k], head_after[k]) for k in head_before), (
        "the head did not train"
    )


def test_phase2_trains_only_the_top_fraction_and_keeps_bn_statistics(backbone_dir):
    model = model_lib.build_classifier(backbone_spec(backbone_dir), 3, train_cfg(fine_tune_fraction=0.5))
    layer = model_lib.backbone_layer(model)
    chosen = {v.name for v in layer.fine_tune_variables}
    assert chosen == {"block2_conv/kernel:0", "block2_conv/bias:0", "block2_bn/gamma:0", "block2_bn/beta:0"}
    before = snapshot(layer.resolved_object.variables)
    _fit(model, 2, 1e-2)
    after = snapshot(layer.resolved_object.variables)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed == chosen, f"changed {sorted(changed)}, expected exactly {sorted(chosen)}"
    for k in before:
        if "moving_" in k:
            assert np.array_equal(before[k], after[k]), f"BatchNorm statistic {k} was updated"


def test_plain_hub_keras_layer_would_update_bn_statistics(backbone_dir):
    """The control for the test above: hub.KerasLayer(trainable=True) trains BN in training mode."""
    import tensorflow_hub as hub

    layer = hub.KerasLayer(backbone_dir, trainable=True)
    inputs = tf.keras.Input([SIZE, SIZE, 3], dtype=tf.uint8)
    x = layer(tf.keras.layers.Rescaling(1 / 255.0)(inputs))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))
    stats = [v for v in layer.variables if "moving_" in v.name]
    before = snapshot(stats)
    model.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_random_data(), epochs=1, verbose=0)
    after = snapshot(stats)
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_fraction_one_trains_every_backbone_variable(backbone_dir):
    model = model_lib.build_classifier(backbone_spec(backbone_dir), 3, train_cfg(fine_tune_fraction=1.0))
    layer = model_lib.backbone_layer(model)
    assert len(layer.fine_tune_variables) == len(layer.resolved_object.trainable_variables) == 8
    model_lib.set_phase(model, 2)
    assert len(model.trainable_weights) == 10


# ---- pixels, augmentation, dtypes, loss ---------------------------------------------------------------------------
@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_uint8_pixels_reach_the_backbone_in_its_value_range(backbone_dir, value_range):
    model = model_lib.build_classifier(
        backbone_spec(backbone_dir, value_range=value_range),
        3,
        train_cfg(augment=GraftConfig().train.augment),
    )
    probe = tf.keras.Model(model.input, model.get_layer("to_backbone_range").output)
    pixels = np.array([[[[0, 128, 255]]]], dtype=np.uint8).repeat(SIZE, 1).repeat(SIZE, 2)
    out = probe(pixels, training=False).numpy()[0, 0, 0]
    lo, hi = value_range
    np.testing.assert_allclose(out, [lo, lo + (hi - lo) * 128 / 255, hi], rtol=0, atol=1e-6)


def test_augmentation_only_in_training(backbone_dir):
    cfg = train_cfg()
    model = model_lib.build_classifier(backbone_spec(backbone_dir), 3, cfg)
    probe = tf.keras.Model(model.input, model.get_layer("to_backbone_range").output)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(4, SIZE, SIZE, 3), dtype=np.uint8)
    a, b = probe(x, training=False).numpy(), probe(x, training=False).numpy()
    assert np.array_equal(a, b)
    assert not np.allclose(probe(x, training=True).numpy(), a)
    cfg.augment.enabled = False
    plain = model_lib.build_classifier(backbone_spec(backbone_dir), 3, cfg)
    assert "augment" not in [layer.name for layer in plain.layers]


def test_logits_are_float32_under_mixed_precision(backbone_dir):
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = model_lib.build_classifier(backbone_spec(backbone_dir), 3, train_cfg())
        assert model.get_layer("dropout").compute_dtype == "float16"
        assert model_lib.backbone_layer(model).compute_dtype == "float32"
        x = np.zeros((2, SIZE, SIZE, 3), np.uint8)
        assert model(x).dtype == tf.float32
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=model_lib.make_loss(3))
        assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        model.fit(_random_data(n=16), epochs=1, verbose=0)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def test_label_smoothing_loss_is_the_one_hot_cross_entropy():
    logits = tf.constant([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels = tf.constant([0, 2], tf.int64)
    s = 0.1
    loss = model_lib.make_loss(3, s)(labels, logits).numpy()
    target = np.eye(3)[[0, 2]] * (1 - s) + s / 3
    logp = tf.nn.log_softmax(logits).numpy()
    np.testing.assert_allclose(loss, np.mean(-(target * logp).sum(-1)), rtol=1e-6)
    plain = model_lib.make_loss(3, 0.0)
    assert isinstance(plain, tf.keras.losses.SparseCategoricalCrossentropy)
    np.testing.assert_allclose(plain(labels, logits).numpy(), np.mean(-logp[[0, 1], [0, 2]]), rtol=1e-6)
    config = model_lib.SparseCrossentropyWithSmoothing(3, s).get_config()
    assert config["label_smoothing"] == s and config["num_classes"] == 3


def test_rejects_a_single_class_and_a_non_vector_backbone(tmp_path, backbone_dir):
    with pytest.raises(model_lib.ModelBuildError, match="at least 2"):
        model_lib.build_classifier(backbone_spec(backbone_dir), 1, train_cfg())

    class Spatial(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
        def __call__(self, x):
            return x

    path = str(tmp_path / "spatial")
    tf.saved_model.save(Spatial(), path)
    with pytest.raises(model_lib.ModelBuildError, match="feature vector"):
        model_lib.build_classifier(backbone_spec(path), 3, train_cfg())


# ---- MirroredStrategy (2 logical CPU devices; a fresh process, devices are fixed at TF start) --------------------
def test_selection_and_frozen_bn_hold_under_mirrored_strategy(backbone_dir, tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import graft
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_model import backbone_spec, train_cfg, _random_data, snapshot
        from graft.components import model as model_lib
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = model_lib.build_classifier(backbone_spec({backbone_dir!r}), 3, train_cfg(fine_tune_fraction=0.5))
            layer = model_lib.backbone_layer(model)
            model_lib.set_phase(model, 2)
            model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss=model_lib.make_loss(3))
        before = snapshot(layer.resolved_object.variables)
        model.fit(_random_data(), epochs=1, verbose=0)
        after = snapshot(layer.resolved_object.variables)
        print(json.dumps({{
            "replicas": strategy.num_replicas_in_sync,
            "chosen": sorted(v.name for v in layer.fine_tune_variables),
            "changed": sorted(k for k in before if not np.array_equal(before[k], after[k])),
        }}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["chosen"] == sorted(
        ["block2_conv/kernel:0", "block2_conv/bias:0", "block2_bn/gamma:0", "block2_bn/beta:0"]
    )
    assert result["changed"] == result["chosen"]


# ---- the backbone's input range ------------------------------------------------------------------------------
def _declare(module_dir: str, value_range) -> None:
    """A graft_backbone.json beside the module declaring its input range (as Graft's own modules do)."""
    from graft.components import backbones
    from graft.components.backbones import metadata as bb_metadata

    loaded = tf.saved_model.load(module_dir)
    meta = {
        "graft_backbone_format": backbones.METADATA_FORMAT,
        "variant": "feature_vector",
        "height": SIZE,
        "width": SIZE,
        "output_size": 16,
        "num_variables": len(loaded.variables),
        "num_trainable_variables": len(loaded.trainable_variables),
        "saved_model_sha256": bb_metadata._sha256_of(os.path.join(module_dir, "saved_model.pb")),
        "value_range": list(value_range),
    }
    Path(module_dir, backbones.METADATA_FILE).write_text(json.dumps(meta))


def test_a_module_declaring_minus_one_to_one_gets_minus_one_to_one_inputs(tmp_path):
    from graft.components import backbones

    module_dir = make_test_backbone(tmp_path / "m")
    _declare(module_dir, [-1.0, 1.0])
    info = backbones.resolve_backbone(module_dir)
    assert info.value_range == (-1.0, 1.0) and info.value_range_source == backbones.METADATA_FILE
    value_range, source = backbones.effective_value_range(info, None)
    assert value_range == (-1.0, 1.0) and "declared by the module" in source
    assert backbones.effective_value_range(info, [-1, 1])[0] == (-1.0, 1.0)  # an agreeing key is fine
    model = model_lib.build_classifier(info, 3, train_cfg())
    to_range = tf.keras.Model(model.input, model.get_layer("to_backbone_range").output)
    pixels = np.stack([np.zeros((SIZE, SIZE, 3), np.uint8), np.full((SIZE, SIZE, 3), 255, np.uint8)])
    out = to_range(pixels, training=False).numpy()
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)
    # A key contradicting the declaration is refused, naming the key.
    with pytest.raises(backbones.BackboneError, match="backbone.value_range.*declares \\[-1.0, 1.0\\]"):
        backbones.effective_value_range(info, [0, 1])


def _saturating_backbone(path) -> str:
    """Conv with positive weights + ReLU6 + pool, no declared range: fine on [0, 1], saturated on [0, 255]."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input([SIZE, SIZE, 3])
    x = tf.keras.layers.Conv2D(16, 3, kernel_initializer=tf.keras.initializers.RandomUniform(0.02, 0.05))(
        inputs
    )
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.ReLU(6.0)(x))
    net = tf.keras.Model(inputs, x)
    root = tf.train.Checkpoint(net=net)
    root.variables, root.trainable_variables, root.regularization_losses = (
        net.variables,
        net.trainable_variables,
        [],
    )
    fn = tf.function(lambda images, training=False: net(images, training=training))
    for training in (False, True):
        fn.get_concrete_function(tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32), training)
    root.__call__ = fn
    tf.saved_model.save(root, str(path))
    return str(path)


def test_a_wrong_user_range_is_caught_by_the_one_batch_sanity_check(tmp_path):
    from graft.components import backbones, feature_cache

    info = backbones.resolve_backbone(_saturating_backbone(tmp_path / "sat"))
    assert info.value_range_source == ""  # nothing declared: the config key decides
    rng = np.random.default_rng(0)
    levels = np.linspace(40, 220, 8)[:, None, None, None]
    pixels = np.clip(levels + rng.normal(0, 20, (8, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)

    def features_for(configured):
        info.value_range, source = backbones.effective_value_range(info, configured)
        model = model_lib.build_classifier(info, 3, train_cfg())
        x = feature_cache.feature_extractor(model)(pixels, training=False).numpy()
        return x, source

    x, source = features_for(None)  # TF Hub's [0, 1]: the right one for this module
    assert feature_cache.sanity_check(x, value_range=(0, 1), range_source=source, handle="sat")["images"] == 8
    x, source = features_for([0, 255])  # the user's mistake: raw pixel values
    assert source == "config key backbone.value_range"
    with pytest.raises(feature_cache.FeatureCheckError, match="same for every image.*backbone.value_range"):
        feature_cache.sanity_check(x, value_range=(0, 255), range_source=source, handle="sat")
    with pytest.raises(feature_cache.FeatureCheckError, match="NaN or infinite"):
        feature_cache.sanity_check(
            np.array([[np.nan, 1.0], [0.0, 1.0]]), value_range=(0, 1), range_source="", handle="x"
        )
