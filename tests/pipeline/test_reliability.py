"""Reliability on bad days: odd-but-valid images, duplicates under two labels, empty class folders, atomic pushes
under SIGKILL and a full disk, unwritable roots, bad handles, and names that try to escape their roots.

Each bad-input case has one test here or in the colleague's suite (README "Troubleshooting" lists all of them with
their outcome): bad files (truncated JPEG, zero bytes, text named .jpg, bad CRC, decompression bomb, symlink loop,
unreadable file, spaces / unicode / non-UTF-8 names) in tests/test_example_gen.py; empty split, single class,
labels outside data.classes in tests/test_data_gate.py; config keys, types and ranges in tests/test_config.py;
pickles and Keras Lambda layers in tests/test_backbones.py. Crashes, resume, concurrent runs and credentials in
logs: tests/test_crash_resume.py (slow: whole runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import struct
import subprocess
import time
import traceback
import zlib
from pathlib import Path

import numpy as np
import pytest
from data_helpers import GRAFT, executions, image_bytes, make_tree, truncated_jpeg, write
from PIL import Image

from graft.components import features
from graft.components.data_errors import DataValidationError
from graft.components.image_example_gen import files
from graft.components.image_example_gen import report as report_mod
from graft.pipeline import dag, dag_inputs
from graft.pipeline.config import GraftConfig

SIZE = 8  # the backbone input size the data-half runs transform to
BACKBONE = {"height": SIZE, "width": SIZE, "channels": 3}


def _config(tmp_path: Path, data, **data_kw) -> GraftConfig:
    cfg = GraftConfig(name="rel", root=str(tmp_path / "runs"))
    cfg.data.path = str(data)
    for k, v in data_kw.items():
        setattr(cfg.data, k, v)
    return cfg.validate()


def run_dag(cfg: GraftConfig, to: str):
    """The real DAG from create_pipeline (LocalDagRunner, Beam, sqlite MLMD), run up to the node ``to``."""
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    LocalDagRunner().run(
        dag.create_pipeline(cfg, BACKBONE, dag_inputs.resolve(cfg)),
        run_options=tfx_pipeline.RunOptions(to_nodes=[to]),
    )


def graft_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GRAFT, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A tmpfs at ``path`` (root only); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {out.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# ---- images that are odd but valid: accepted, and decoded to the right RGB pixels -----------------------------------
def _png(array: np.ndarray) -> bytes:
    """A PNG written by hand from a uint8/uint16 [h, w] or [h, w, 3] array (PIL cannot write 16-bit RGB)."""
    h, w = array.shape[:2]
    color_type = 2 if array.ndim == 3 else 0
    depth = 16 if array.dtype == np.uint16 else 8
    raw = b"".join(b"\x00" + array[y].astype(">u2" if depth == 16 else "u1").tobytes() for y in range(h))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def odd_images() -> dict[str, tuple[bytes, np.ndarray, int]]:
    """name -> (file bytes, expected RGB uint8 [SIZE, SIZE, 3] after Transform, (max, mean) abs tolerance)."""
    rng = np.random.default_rng(5)
    out = {}
    rgb16 = rng.integers(0, 65536, (SIZE, SIZE, 3), dtype=np.uint16)
    out["rgb16.png"] = (_png(rgb16), (rgb16 / 257.0).round(), (1, 1))  # 16 bits per channel -> 8
    gray16 = rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16)
    out["gray16.png"] = (_png(gray16), np.repeat((gray16 / 257.0).round()[..., None], 3, 2), (1, 1))
    gray = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    out["gray.png"] = (_encode(Image.fromarray(gray, "L"), "PNG"), np.repeat(gray[..., None], 3, 2), (0, 0))
    rgba = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    out["rgba.png"] = (_encode(Image.fromarray(rgba, "RGBA"), "PNG"), rgba[..., :3], (0, 0))  # alpha dropped
    pal = Image.fromarray(rng.integers(0, 4, (SIZE, SIZE), dtype=np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0] + [0] * 756)
    out["palette.png"] = (_encode(pal, "PNG", transparency=0), np.asarray(pal.convert("RGB")), (0, 0))
    # CMYK JPEG (print workflows, some stock photos): compared with PIL's own decode of the same file. The two
    # JPEG decoders differ by a few levels on an 8x8 image (TensorFlow's default fast integer DCT, upsampling); a
    # wrong colour conversion (e.g. inverted CMYK) would be off by ~100 on average.
    smooth = np.stack(np.meshgrid(np.linspace(0, 255, SIZE), np.linspace(255, 0, SIZE)), -1)
    cmyk_src = np.concatenate([smooth, smooth[..., :1] * 0.5, np.full((SIZE, SIZE, 1), 30.0)], -1).astype(
        np.uint8
    )
    cmyk = _encode(Image.fromarray(cmyk_src, "CMYK"), "JPEG", quality=95)
    out["cmyk.jpg"] = (cmyk, np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB")), (16, 6))
    gray_jpeg = _encode(Image.fromarray(smooth[..., 0].astype(np.uint8), "L"), "JPEG", quality=95)
    out["gray.jpg"] = (gray_jpeg, np.asarray(Image.open(io.BytesIO(gray_jpeg)).convert("RGB")), (16, 6))
    # Animated GIF: the first frame is the image (solid colours: exact through the GIF palette).
    frames = [Image.new("RGB", (SIZE, SIZE), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    out["animated.gif"] = (gif.getvalue(), np.full((SIZE, SIZE, 3), (255, 0, 0)), (0, 0))
    # 1x1 pixel: stretched to the backbone's size.
    out["one_pixel.png"] = (
        _encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"),
        np.full((SIZE, SIZE, 3), (10, 200, 30)),
        (0, 0),
    )
    return out


def _transformed_images(transformed_uri: str) -> list[np.ndarray]:
    """Every transformed image (uint8 [SIZE, SIZE, 3]) of the three splits."""
    import tensorflow as tf

    out = []
    for split in features.SPLITS:
        paths = sorted(Path(transformed_uri, f"Split-{split}").glob("*.gz"))
        for rec in tf.data.TFRecordDataset([str(p) for p in paths], compression_type="GZIP"):
            ex = tf.train.Example.FromString(rec.numpy())
            img = features.decode_transformed_image(
                ex.features.feature[features.TRANSFORMED_IMAGE_KEY].bytes_list.value[0], SIZE, SIZE
            )
            out.append(np.asarray(img))
    return out


def test_odd_but_valid_images_are_read_and_decoded_to_rgb(tmp_path):
    """16-bit PNG (RGB and gray), grayscale PNG/JPEG, RGBA, palette with transparency, CMYK JPEG, animated GIF and
    a 1x1 image: none is skipped, and Transform turns each into the expected RGB pixels at the backbone's size.
    Same-label duplicates are kept and reported; one picture under two labels is quarantined (both copies)."""
    data = tmp_path / "data"
    make_tree(data, classes=("cat", "dog"), per_class=20)
    odd = odd_images()
    for name, (content, _, _) in odd.items():
        write(data / "cat" / name, content)
    write(data / "dog" / "twin.png", (data / "dog" / "001.png").read_bytes())  # same label: kept
    write(data / "dog" / "stray.png", (data / "cat" / "003.png").read_bytes())  # two labels: quarantined
    cfg = _config(tmp_path, data, max_bad_fraction=0.1)
    run_dag(cfg, "Transform")

    from graft.pipeline import runs

    outputs = runs.summarize(cfg.metadata_path, "latest", cfg.name, with_evaluation=False).outputs
    uri = outputs["ImageExampleGen.examples"]
    rep = report_mod.read_data_report(uri)
    reasons = {s["path"]: s["reason"] for s in report_mod.read_skipped_files(uri)}
    assert set(reasons) == {"cat/003.png", "dog/stray.png"}, reasons
    assert "also 'dog/stray.png' (label 'dog')" in reasons["cat/003.png"]
    assert "labelled 'cat'" in reasons["cat/003.png"] and "quarantined" in reasons["cat/003.png"]
    assert "also 'cat/003.png' (label 'cat')" in reasons["dog/stray.png"]
    assert (
        rep["num_examples"] == 40 + len(odd) + 2 - 2 and rep["num_skipped"] == 2
    )  # +twin +stray -both copies
    groups = {tuple(g["paths"]): g["labels"] for g in rep["duplicates"]}
    assert groups == {
        ("cat/003.png", "dog/stray.png"): ["cat", "dog"],
        ("dog/001.png", "dog/twin.png"): ["dog"],
    }

    # Transform's output: each odd image comes out as the expected RGB pixels at the backbone's size.
    images = _transformed_images(outputs["Transform.transformed_examples"])
    assert len(images) == rep["num_examples"]
    for name, (_, expected, (tol_max, tol_mean)) in odd.items():
        errors = [np.abs(img.astype(int) - expected.astype(int)) for img in images]
        best = min(errors, key=lambda e: (e.max(), e.mean()))
        assert best.max() <= tol_max and best.mean() <= tol_mean, (
            f"{name}: no transformed image close to the expected pixels (best: max {best.max()}, mean "
            f"{best.mean():.2f})"
        )


def test_empty_class_folder_stops_the_run_before_training(tmp_path):
    """Without the gate, an empty class folder reached the Evaluator (its per-class metrics are built from the
    class folders) and crashed it after training: 'class_id "3" out of range of predictions'."""
    data = tmp_path / "data"
    make_tree(data, classes=("cat", "dog"), per_class=12)
    (data / "eel").mkdir()  # empty
    write(data / "fox" / "only.jpg", truncated_jpeg())  # every file in it is skipped
    cfg = _config(tmp_path, data, max_bad_fraction=0.5)
    with pytest.raises(DataValidationError) as e:
        run_dag(cfg, "DataGate")
    msg = str(e.value)
    assert (
        "class folder 'eel' has no usable images" in msg and "add images of 'eel' or remove the folder" in msg
    )
    assert "class folder 'fox' has no usable images" in msg
    assert executions(str(cfg.metadata_path))["DataGate"] == ["FAILED"]


def test_class_names_that_are_paths_are_refused():
    for name in ("../x", "a/b", "a\\b", "..", "."):
        assert "is a path" in files.class_name_problem(name), name
    assert files.class_name_problem("golden retriever") is None


def test_csv_label_with_a_path_is_quarantined(tmp_path):
    from graft.components.image_example_gen.executor import csv_candidates

    write(tmp_path / "a.png", image_bytes())
    write(tmp_path / "b.png", image_bytes(seed=1))
    (tmp_path / "m.csv").write_text("path,label\na.png,../../etc\nb.png,cat\n")
    good, bad = csv_candidates(str(tmp_path), "m.csv")
    assert [c.rel for c in good] == ["b.png"]
    assert bad[0]["path"] == "a.png" and "is a path" in bad[0]["reason"]


# ---- the Pusher: a version directory is whole or absent, whatever kills it ---------------------------------------
@pytest.fixture(scope="module")
def model_uri(tmp_path_factory) -> Path:
    """A real SavedModel (8 MB of variables and an asset) inside a Model artifact's directory layout."""
    import tensorflow as tf

    uri = tmp_path_factory.mktemp("model")
    vocab = uri / "vocab.txt"
    vocab.write_text("a\nb\n")
    m = tf.Module()
    m.w = tf.Variable(tf.random.stateless_uniform([2_000_000], seed=[1, 2]))
    m.b = tf.Variable(tf.zeros([10]))
    m.vocab = tf.saved_model.Asset(str(vocab))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(x):
        return x * m.b[0] + tf.reduce_sum(m.w[:3])

    tf.saved_model.save(m, str(uri / "Format-Serving"), signatures={"serving_default": serve})
    return uri


def _push_args(model_uri: Path, base: Path, out_uri: Path, blessed: bool = True):
    from google.protobuf import json_format
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts

    model = standard_artifacts.Model()
    model.uri = str(model_uri)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out_uri) + "_blessing"
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(out_uri)
    dest = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base))
    )
    return (
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": json_format.MessageToJson(dest)},
    )


def _file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def partial_versions(base: Path, model_dir: Path) -> list[str]:
    """Numeric version directories (what TF Serving loads) that are not an exact copy of the model."""
    if not base.exists():
        return []
    expected = _file_digests(model_dir)
    bad = []
    for d in sorted(base.iterdir()):
        if d.name.isdigit():
            got = _file_digests(d)
            if got != expected:
                missing = sorted(set(expected) - set(got))
                differ = sorted(k for k in set(expected) & set(got) if got[k] != expected[k])
                bad.append(f"{d.name}: missing {missing}, different {differ}")
    return bad


def _executor(kind: str):
    if kind == "graft":
        from graft.components import pusher

        return pusher.Executor()
    from tfx.components.pusher import executor as tfx_executor

    return tfx_executor.Executor()


def _install_kill_hooks(kind: str, kill_at: int, counter: list[int]) -> None:
    """In a forked child: SIGKILL this process right before its ``kill_at``-th file-system step of the push."""

    def step():
        counter[0] += 1
        if counter[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner, name):
        real = getattr(owner, name)

        def hooked(*a, **k):
            step()
            return real(*a, **k)

        setattr(owner, name, hooked)

    if kind == "graft":
        from tfx.utils import io_utils

        from graft.components import pusher

        for name in ("_copy_file", "_fsync_dir"):
            wrap(pusher, name)
        wrap(pusher.os, "rename")
        wrap(io_utils, "copy_dir")  # the archived copy, after the push
    else:
        from tfx.dsl.io import fileio

        wrap(fileio, "copy")


def push_in_child(kind: str, args, kill_at: int = 0, ready_fd: int | None = None) -> tuple[int, int]:
    """Run the executor's Do in a forked child; returns (wait status, steps taken when it was not killed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            counter = [0]
            _install_kill_hooks(kind, kill_at, counter)
            if ready_fd is not None:
                os.write(ready_fd, b"1")
            _executor(kind).Do(*args)
            os.write(w, str(counter[0]).encode())
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(w)
    if ready_fd is not None:
        return pid, r
    _, status = os.waitpid(pid, 0)
    steps = os.read(r, 64)
    os.close(r)
    return status, int(steps or 0)


@pytest.mark.parametrize("kind", ["graft", "tfx"])
def test_push_killed_before_every_step(kind, model_uri, tmp_path):
    """SIGKILL right before each file-system step of a push (every file copy, fsync, the rename, the archive):
    Graft's Pusher never leaves a partial version directory. TFX's stock Pusher does (this is why Graft has its
    own executor), which also shows the check can fail."""
    model_dir = model_uri / "Format-Serving"
    status, total = push_in_child(kind, _push_args(model_uri, tmp_path / "dry", tmp_path / "dry_out"))
    assert status == 0 and total >= 6, (status, total)
    assert partial_versions(tmp_path / "dry", model_dir) == []
    found_partial = []
    for k in range(1, total + 1):
        base = tmp_path / f"serving_{k}"
        status, _ = push_in_child(kind, _push_args(model_uri, base, tmp_path / f"out_{k}"), kill_at=k)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, status)
        found_partial += partial_versions(base, model_dir)
    if kind == "graft":
        assert found_partial == []
    else:
        assert found_partial, "the stock Pusher was expected to leave a partial version directory"


def test_push_killed_at_random_moments_then_resumed(model_uri, tmp_path):
    """SIGKILL after random delays (inside a file copy too), all on one serving directory; then a clean push
    removes the stale staging directories and the serving directory holds only complete versions."""
    from graft.components import pusher

    model_dir = model_uri / "Format-Serving"
    base = tmp_path / "serving"
    t0 = time.perf_counter()
    status, _ = push_in_child("graft", _push_args(model_uri, tmp_path / "timing", tmp_path / "timing_out"))
    duration = time.perf_counter() - t0
    assert status == 0
    rng = random.Random(8)
    for i in range(12):
        ready_r, ready_w = os.pipe()
        pid, result_r = push_in_child(
            "graft", _push_args(model_uri, base, tmp_path / f"out_{i}"), ready_fd=ready_w
        )
        os.close(ready_w)
        os.read(ready_r, 1)  # the child is about to call Do
        os.close(ready_r)
        time.sleep(rng.uniform(0, duration))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(result_r)
        assert partial_versions(base, model_dir) == [], i
        # A version directory is TF Serving's to load; a staging directory is not a number, so it ignores it.
        names = os.listdir(base) if base.exists() else []  # killed before the push created it
        assert all(n.isdigit() or n.startswith(pusher.STAGING_PREFIX) for n in names), names
    args = _push_args(model_uri, base, tmp_path / "final_out")
    pusher.Executor().Do(*args)
    names = os.listdir(base)
    assert names and all(n.isdigit() for n in names), names  # stale staging directories are gone
    assert partial_versions(base, model_dir) == []
    pushed = args[1]["pushed_model"][0]
    assert pushed.get_int_custom_property("pushed") == 1
    assert Path(pushed.get_string_custom_property("pushed_destination")).name == str(max(map(int, names)))


def test_push_versions_increase_and_an_identical_model_is_not_copied_twice(model_uri, tmp_path):
    from graft.components import pusher

    base = tmp_path / "serving"
    (base / "99999999999").mkdir(parents=True)  # a version from a clock far ahead
    (base / "99999999999" / "saved_model.pb").write_bytes(b"other model")
    args = _push_args(model_uri, base, tmp_path / "o1")
    pusher.Executor().Do(*args)
    first = args[1]["pushed_model"][0].get_string_custom_property("pushed_version")
    assert first == "100000000000"  # above the newest, or TF Serving would keep serving the other one
    again = _push_args(model_uri, base, tmp_path / "o2")
    pusher.Executor().Do(*again)  # same model (a push killed after its rename, rerun): reused, not copied
    assert again[1]["pushed_model"][0].get_string_custom_property("pushed_version") == first
    assert sorted(os.listdir(base)) == ["100000000000", "99999999999"]


def test_push_not_blessed_touches_nothing(model_uri, tmp_path):
    from graft.components import pusher

    args = _push_args(model_uri, tmp_path / "serving", tmp_path / "o", blessed=False)
    pusher.Executor().Do(*args)
    assert args[1]["pushed_model"][0].get_int_custom_property("pushed") == 0
    assert not (tmp_path / "serving").exists()


def test_push_onto_a_full_disk_leaves_nothing_partial(model_uri, tmp_path):
    from graft.components import pusher

    with mounted_tmpfs(tmp_path / "small", "size=2m") as small:
        base = small / "serving"
        with pytest.raises(pusher.PushError) as e:
            pusher.Executor().Do(*_push_args(model_uri, base, tmp_path / "o"))
        msg = str(e.value)
        assert "No space left on device" in msg and "the disk is full" in msg and "push.serving_root" in msg
        assert os.listdir(base) == []  # no version, no staging directory


# ---- roots that cannot be written, handles that do not exist, names that escape ----------------------------------
def test_read_only_run_root_is_a_usage_error_before_anything_runs(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=2)
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        out = graft_cli("run", "--data", str(data), "--backbone", "tiny", "--root", str(ro / "runs"))
        assert out.returncode == 2, out.stderr[-2000:]
        assert "config key 'root'" in out.stderr and "read-only file system" in out.stderr
        assert "--root" in out.stderr
        out = graft_cli(
            "run",
            "--data",
            str(data),
            "--backbone",
            "tiny",
            "--root",
            str(tmp_path / "runs"),
            "--set",
            f"push.serving_root={ro / 'serving'}",
        )
        assert out.returncode == 2, out.stderr[-2000:]
        assert "config key 'push.serving_root'" in out.stderr and "Read-only file system" in out.stderr
    assert not (tmp_path / "runs" / "graft" / "metadata.sqlite").exists()  # stopped before TFX started


def test_backbone_handle_that_does_not_exist(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=2)
    out = graft_cli(
        "run", "--data", str(data), "--backbone", str(tmp_path / "no_such_module"), "--root", str(tmp_path)
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "no_such_module" in out.stderr and "does not exist" in out.stderr
    assert not (tmp_path / "graft" / "serving").exists()


def test_backbone_with_a_pickle_is_refused_and_the_pickle_never_runs(tmp_path):
    """A module directory carrying a pickle whose loading would run code (it would create a file)."""
    import pickle
    import shutil

    from graft.components import backbones

    module = tmp_path / "module"
    shutil.copytree(backbones.build_tiny(16, out_dir=tmp_path / "hub"), module)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (module / "assets" / "extra.pkl").write_bytes(pickle.dumps(Evil()))
    data = tmp_path / "data"
    make_tree(data, per_class=2)
    out = graft_cli("run", "--data", str(data), "--backbone", str(module), "--root", str(tmp_path / "runs"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "extra.pkl" in out.stderr and "pickle" in out.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("name=../escape", "'name'"),
        ("name=/etc", "'name'"),
        ("name=a/b", "'name'"),
        ("push.model_name=..", "'push.model_name'"),
        ("push.model_name=models/../../x", "'push.model_name'"),
        ("data.classes=[cat, ../../etc]", "'data.classes'"),
        ("kubeflow.kfp_experiment=../x", "'kubeflow.kfp_experiment'"),
    ],
)
def test_names_cannot_escape_their_roots(override, key, tmp_path):
    out = graft_cli(
        "run", "--data", str(tmp_path), "--backbone", "tiny", "--root", str(tmp_path), "--set", override
    )
    assert out.returncode == 2, out.stderr
    assert f"config key {key}" in out.stderr and "not a safe name" in out.stderr
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("train:\n  batchsize: 8\n", "unknown config key 'train.batchsize'"),
        ("train:\n  batch_size: eight\n", "'train.batch_size': expected an integer"),
        ("train:\n  phase1_epochs: -2\n", "'train.phase1_epochs': must be >= 1"),
        ("data:\n  max_bad_fraction: 1.5\n", "'data.max_bad_fraction': must be between 0 and 1"),
        ("evaluation:\n  min_accuracy: 2\n", "'evaluation.min_accuracy': must be in [0, 1]"),
        ("evaluation:\n  min_class_recall: -0.1\n", "'evaluation.min_class_recall'"),
        ("data:\n  val_fraction: 0.3\n", "must add up to 1.0"),
        ("[1, 2]\n", "must hold a mapping"),
    ],
)
def test_config_file_errors_exit_2_naming_the_key(yaml_text, needle, tmp_path):
    f = tmp_path / "graft.yaml"
    f.write_text(yaml_text)
    out = graft_cli(
        "run",
        "--data",
        str(tmp_path),
        "--backbone",
        "tiny",
        "--root",
        str(tmp_path / "r"),
        "--config",
        str(f),
    )
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()


def test_disk_full_hint_names_the_fix(tmp_path):
    from graft.pipeline import recovery

    cfg = _config(tmp_path, tmp_path)
    err = OSError(28, "No space left on device")
    wrapped = RuntimeError("Execution 7 failed")
    wrapped.__cause__ = err
    assert "the disk is full" in recovery.failure_hint(wrapped, cfg)
    assert str(cfg.run_root) in recovery.failure_hint(wrapped, cfg)
    assert recovery.failure_hint(RuntimeError("database or disk is full"), cfg)
    assert recovery.failure_hint(RuntimeError("something else"), cfg) is None


def test_run_ids_cannot_escape_the_runs_folder(tmp_path):
    """`graft report RUN_ID` and the run records turn a run id into a file name: no path tricks."""
    from graft.pipeline import runs

    path = runs.write_run_record(tmp_path, "2026-01-01T00:00:00", {"run_id": "2026-01-01T00:00:00", "x": 1})
    assert json.loads(path.read_text())["x"] == 1
    assert path.parent == tmp_path / "runs" and ":" not in path.name
    for evil in ("../../etc/passwd", "/etc/passwd", ".."):
        assert runs.record_path(tmp_path, evil).parent == tmp_path / "runs"
