"""A compile whose config declares the data layout reads neither the data location nor the network.

Building the DAG reads nothing (graft.pipeline.dag); the compile decides what to read (graft.pipeline.dag_inputs).
Here every gs:// access through TensorFlow's filesystem layer, every directory listing of Graft's file helpers and
every socket connection raises, so a compile that needed the data (or a credential) would fail; the last test
shows the same guard does stop a compile that has to look.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from graft.kubeflow import compile as kfc
from graft.pipeline.config import GraftConfig

IMAGE = "us-central1-docker.pkg.dev/graft-test/graft/graft:1.0"


class Touched(BaseException):  # noqa: N818 - BaseException: no `except Exception` in the code can swallow it
    pass


@pytest.fixture(scope="module")
def backbone_info():
    """What `graft backbone show gs://.../tiny_32 --json` prints, made from the offline tiny module (before the
    guard: building it reads local files)."""
    from graft.components.backbones import resolve_backbone

    info = resolve_backbone("tiny").to_dict()
    info["handle"] = "gs://graft-test/hub/tiny_32"
    return info


@pytest.fixture
def no_data_access(monkeypatch):
    import tensorflow as tf

    from graft.components.image_example_gen import files

    def guard(name, real):
        def f(path, *a, **kw):
            if str(path).startswith("gs://"):
                raise Touched(f"{name}({path!r})")
            return real(path, *a, **kw)

        return f

    for name in ("exists", "isdir", "listdir", "glob", "stat", "walk"):
        monkeypatch.setattr(tf.io.gfile, name, guard(name, getattr(tf.io.gfile, name)))

    def listing(path, *a, **kw):
        raise Touched(f"files.list_dir({path!r})")

    monkeypatch.setattr(files, "list_dir", listing)

    def connect(self, address, *a, **kw):
        raise Touched(f"socket connect {address!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **kw: connect(None, address))


def _config(**data) -> GraftConfig:
    cfg = GraftConfig(name="graft-nr")
    cfg.backbone.handle = "gs://graft-test/hub/tiny_32"
    cfg.kubeflow.pipeline_root = "gs://graft-test/pipeline_root"
    cfg.push.serving_root = "gs://graft-test/serving"
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg.validate()


def test_folder_data_with_format_and_classes_compiles_without_reading_it(
    tmp_path, backbone_info, no_data_access
):
    cfg = _config(path="gs://graft-test/images", format="folders", use_spans=False, classes=["cat", "dog"])
    r = kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    text = Path(r.path).read_text()
    assert "gs://graft-test/images" in text  # ExampleGen's input base, as declared
    assert '\\"cat\\", \\"dog\\"' in text or '"cat", "dog"' in text  # the configured classes travel


def test_tfrecord_glob_compiles_without_reading_it(tmp_path, backbone_info, no_data_access):
    cfg = _config(path="gs://graft-test/examples/*.tfrecord.gz")
    r = kfc.compile_pipeline(cfg, "kubeflow", tmp_path / "p.yaml", image=IMAGE, backbone_info=backbone_info)
    assert "*.tfrecord.gz" in Path(r.path).read_text()


def test_the_guard_stops_a_compile_that_must_look_at_the_data(tmp_path, backbone_info, no_data_access):
    cfg = _config(path="gs://graft-test/images")  # data.format=auto: the layout has to be read
    with pytest.raises(Touched):
        kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)


def test_unreachable_data_at_compile_time_names_the_keys_that_avoid_reading_it(
    tmp_path, backbone_info, monkeypatch
):
    """A gs:// data.path that cannot be listed (no network, no credentials) is a sentence and exit 2, not libcurl."""
    from graft import errors
    from graft.components.image_example_gen import files

    def unreachable(path, *a, **kw):
        raise OSError("Error executing an HTTP request: libcurl code 6 meaning 'Couldn't resolve host name'")

    monkeypatch.setattr(files, "list_dir", unreachable)
    monkeypatch.setattr(files, "is_dir", unreachable, raising=False)
    import tensorflow as tf

    for name in ("exists", "isdir", "listdir", "glob", "stat"):
        monkeypatch.setattr(tf.io.gfile, name, unreachable)
    cfg = _config(path="gs://graft-test/images")
    with pytest.raises(kfc.CompileError) as e:
        kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    msg = str(e.value)
    assert "config key 'data.path': cannot read gs://graft-test/images at compile time" in msg
    assert "data.format=folders|tfrecord with data.use_spans=false and data.classes" in msg
    assert errors.exit_code(e.value) == errors.EXIT_USAGE


def test_compile_lists_every_missing_key_at_once(tmp_path, backbone_info):
    cfg = GraftConfig(name="graft-nr")
    cfg.data.path = "gs://graft-test/images"
    cfg.backbone.handle = "gs://graft-test/hub/tiny_32"
    with pytest.raises(kfc.CompileError) as e:
        kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", backbone_info=backbone_info)
    msg = str(e.value)
    assert msg.startswith("3 problems stop this compile:"), msg
    for key in ("kubeflow.image", "kubeflow.pipeline_root", "push.serving_root"):
        assert f"config key '{key}'" in msg


@pytest.mark.parametrize("width, pattern", [(3, "span-{SPAN:3}/*/*"), (0, "span-{SPAN}/*/*")])
def test_span_folders_with_a_declared_width_compile_without_reading_them(
    tmp_path, backbone_info, no_data_access, width, pattern
):
    """Continuous training over span-N/ folders, compiled hermetically: data.span_width says how the folder names
    are written (TFX fills a bare {SPAN} unpadded, so span-007 needs {SPAN:3}); the driver finds the newest."""
    cfg = _config(
        path="gs://graft-test/images",
        format="folders",
        use_spans=True,
        span_width=width,
        classes=["cat", "dog"],
    )
    r = kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    assert pattern in Path(r.path).read_text()
    assert not any("this compile read" in n for n in r.notes), r.notes


def test_without_a_span_width_the_note_names_it(tmp_path, backbone_info):
    from graft.pipeline import dag_inputs

    cfg = _config(path="gs://graft-test/images", format="folders", use_spans=True, classes=["cat", "dog"])
    assert not dag_inputs.declares_layout(cfg)
    with pytest.raises(Exception, match=r"data.span_width"):
        dag_inputs.resolve(cfg, read_data=False)
