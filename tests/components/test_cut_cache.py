"""Phase 2 on cached activations (components/cut_cache.py): the cut reproduces the module, training the top writes
back into the module's own variables only when phase 2 is kept, and modules Graft cannot rebuild are refused.

Real pieces: Graft's offline ``tiny`` TF Hub module (built by ``graft backbone tiny``'s code, with its
graft_backbone.json), small real PNG/JPEG images through a real tf.Transform analysis, the Trainer's own loop.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import graft  # noqa: F401

# isort: split
import tensorflow as tf
from test_model import SIZE, make_test_backbone, train_cfg
from test_trainer import analyze, make_split, write_transformed

from graft.components import backbones, cut_cache, feature_cache, training_loop
from graft.components import model as model_lib
from graft.components import trainer as trainer_lib
from graft.components.backbones import metadata


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import tensorflow_transform as tft

    root = tmp_path_factory.mktemp("cut_data")
    train, val = make_split(10, seed=1), make_split(4, seed=2)
    tft_output = tft.TFTransformOutput(analyze(train, str(root / "transform_output")))
    return {
        "tft_output": tft_output,
        "train_files": write_transformed(tft_output, train, str(root / "Split-train")),
        "val_files": write_transformed(tft_output, val, str(root / "Split-val")),
        "tiny": backbones.resolve_backbone("tiny", input_size=SIZE),
        "foreign": make_test_backbone(root / "foreign"),
    }


def _cfg(**kw):
    cfg = train_cfg(dropout=0.0, batch_size=8, phase1_epochs=3, **kw)
    cfg.augment.enabled = False
    return cfg


def _sets(data):
    read = lambda files: trainer_lib.tfxio_input_fn(  # noqa: E731
        files, data["tft_output"], 8, SIZE, SIZE, 3, shuffle=False
    )
    return read(data["train_files"]), read(data["val_files"])


def _planned(data, fraction=0.5):
    info = data["tiny"]
    model = model_lib.build_classifier(info, 3, _cfg(fine_tune_fraction=fraction))
    cut, why = cut_cache.plan(model, metadata.read_module_metadata(info.path), SIZE, SIZE)
    assert cut is not None, why
    return model, cut


def _cached(cut, train, val):
    """(train, val activations), (train, val features): what run_fn hands the loop."""
    acts = (cut_cache.extract(cut, train), cut_cache.extract(cut, val))
    return acts, (cut_cache.features(cut, acts[0]), cut_cache.features(cut, acts[1]))


def _module_values(model):
    return [v.numpy().copy() for v in model_lib.backbone_layer(model)._func.variables]  # noqa: SLF001


def test_bottom_then_top_is_the_module(data):
    """Features through the cut (bottom, float16 cache, top) equal the classifier's own backbone output."""
    model, cut = _planned(data)
    train, _ = _sets(data)
    expected = feature_cache.extract(feature_cache.feature_extractor(model), train)
    got = cut_cache.features(cut, cut_cache.extract(cut, train))
    assert got.count == expected.count == 30
    np.testing.assert_array_equal(got.y, expected.y)
    np.testing.assert_allclose(got.x, expected.x, atol=2e-2 * np.abs(expected.x).max())  # float16 activations
    # The cut sits right below the lowest fine-tuned layer, and the top trains just those layers.
    chosen = {v.name.split(":")[0] for v in model_lib.backbone_layer(model).fine_tune_variables}
    assert any(n.startswith(cut.layer + "/") for n in chosen)
    assert cut.trainable_variables >= len(chosen)
    assert cut.record()["activation_shape"] == [int(d) for d in cut.top.input.shape[1:]]


def test_kept_phase_two_is_written_into_the_exported_backbone(data):
    model, cut = _planned(data)
    train, val = _sets(data)
    acts, feats = _cached(cut, train, val)
    before = _module_values(model)
    cfg = _cfg(fine_tune_fraction=0.5, phase2_epochs=4, phase2_learning_rate=3e-3, max_minutes=None)
    history = training_loop.train_two_phases(
        model, train, val, cfg, 3, cached=feats, cut=(cut, *acts), shuffle_features=False
    )
    p2 = history["phases"][1]
    assert p2["on"] == f"cached activations below {cut.layer}"
    assert len([r for r in history["epochs"] if r["phase"] == 2]) == 4  # every epoch runs
    assert history["selected"]["phase"] == 2, history  # learnable shapes: fine-tuning lowers val loss
    after = _module_values(model)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # What the classifier (the exported graph) computes is what phase 2 trained on the activations.
    np.testing.assert_allclose(
        feature_cache.extract(feature_cache.feature_extractor(model), val).x,
        cut_cache.features(cut, acts[1]).x,
        atol=2e-2 * np.abs(feats[1].x).max(),
    )


def test_discarded_phase_two_leaves_the_module_untouched(data):
    model, cut = _planned(data)
    train, val = _sets(data)
    acts, feats = _cached(cut, train, val)
    before = _module_values(model)
    # A learning rate that wrecks the top: its val loss cannot beat phase 1's.
    cfg = _cfg(fine_tune_fraction=0.5, phase2_epochs=2, phase2_learning_rate=0.9, phase2_warmup_epochs=0.0)
    history = training_loop.train_two_phases(
        model, train, val, cfg, 3, cached=feats, cut=(cut, *acts), shuffle_features=False
    )
    assert history["selected"]["phase"] == 1, history
    for a, b in zip(before, _module_values(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_modules_graft_cannot_rebuild_fall_back_to_images(data):
    model = model_lib.build_classifier(
        types.SimpleNamespace(
            handle="t", path=data["foreign"], height=SIZE, width=SIZE, value_range=(0.0, 1.0)
        ),
        3,
        _cfg(fine_tune_fraction=0.5),
    )
    cut, why = cut_cache.plan(model, metadata.read_module_metadata(data["foreign"]), SIZE, SIZE)
    assert cut is None and "phase 2 on images" in why
    # Graft's own module, but a rebuilt graph that does not match it (a different size): refused, not guessed.
    tiny = model_lib.build_classifier(data["tiny"], 3, _cfg(fine_tune_fraction=0.5))
    meta = dict(metadata.read_module_metadata(data["tiny"].path))
    with tf.device("/cpu:0"):
        cut, why = cut_cache.plan(tiny, {**meta, "name": "mobilenet_v1_imagenet"}, 128, 128)
    assert cut is None and "does not match" in why


def test_the_memory_cap_sends_phase_two_to_images(data):
    info = data["tiny"]
    model = model_lib.build_classifier(info, 3, _cfg(fine_tune_fraction=0.5))
    cut, why = trainer_lib._plan_cut(model, info, _cfg(fine_tune_fraction=0.5, phase2_cache_mb=0), 1000)
    assert cut is None and "train.phase2_cache_mb=0" in why
    cut, why = trainer_lib._plan_cut(model, info, _cfg(fine_tune_fraction=0.5), 1000)
    assert cut is not None and why is None
    assert trainer_lib._plan_cut(model, info, _cfg(fine_tune_fraction=0.0), 1000) == (None, None)
