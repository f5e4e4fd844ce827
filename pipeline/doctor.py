"""``graft doctor``: is this environment able to run Graft, and if not, what to do about each problem."""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import os
import re
import shutil
import sys
import time
from pathlib import Path

from graft import env

# Distribution name -> label shown to the user.
PACKAGES = {
    "tensorflow": "TensorFlow",
    "tf-keras": "tf-keras",
    "tfx": "TFX",
    "apache-beam": "Apache Beam",
    "tensorflow-data-validation": "TFDV",
    "tensorflow-model-analysis": "TFMA",
    "tensorflow-transform": "TFT",
    "tensorflow-hub": "tensorflow-hub",
    "ml-metadata": "ML Metadata",
    "kfp": "KFP",
}
MIN_FREE_GB = 5.0
REPO_ROOT = Path(__file__).resolve().parents[1]  # pipeline/doctor.py -> the checkout


HEAVY_MODULES = ("tfx.v1", "tensorflow", "apache_beam", "tensorflow_transform", "tensorflow_model_analysis")


def _modules_without_bytecode(names: tuple[str, ...] = HEAVY_MODULES) -> list[str]:
    """Heavy modules whose source has no up-to-date .pyc beside it (what `make setup --compile-bytecode` writes)."""
    import importlib.util

    missing = []
    for name in names:
        spec = importlib.util.find_spec(name)
        src = spec.origin if spec else None
        if not src or not src.endswith(".py"):
            continue
        pyc = importlib.util.cache_from_source(src)
        if not os.path.exists(pyc) or os.path.getmtime(pyc) < os.path.getmtime(src):
            missing.append(name)
    return missing


@dataclasses.dataclass
class Check:
    name: str
    value: str
    ok: bool = True
    fix: str = ""


@dataclasses.dataclass
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [dataclasses.asdict(c) for c in self.checks]}

    def render(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = []
        for c in self.checks:
            mark = "ok " if c.ok else "FAIL"
            lines.append(f"[{mark}] {c.name:<{width}}  {c.value}")
            if not c.ok:
                lines.append(f"       {'':<{width}}  fix: {c.fix}")
        problems = sum(not c.ok for c in self.checks)
        lines.append("doctor: all checks passed" if not problems else f"doctor: {problems} problem(s) found")
        return "\n".join(lines)


def pinned_versions(lock: Path | None = None) -> dict[str, str]:
    """Exact pins from requirements.lock (empty when the lock is not next to the package, e.g. a wheel install)."""
    lock = lock or REPO_ROOT / "requirements.lock"
    pins: dict[str, str] = {}
    if lock.is_file():
        for line in lock.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\;]+)", line)
            if m:
                pins[_norm(m.group(1))] = m.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run_checks(root: str = "graft_runs") -> Report:
    checks: list[Check] = []
    py = ".".join(map(str, sys.version_info[:3]))
    checks.append(
        Check(
            "Python",
            f"{py} ({sys.executable})",
            ok=sys.version_info[:2] == (3, 10),
            fix="TFX 1.16 needs Python 3.10: run `make setup` (it finds pyenv's 3.10) or install Python 3.10",
        )
    )
    pins = pinned_versions()
    for dist, label in PACKAGES.items():
        try:
            have = md.version(dist)
        except md.PackageNotFoundError:
            checks.append(
                Check(label, "not installed", ok=False, fix="run `make setup` to install the locked stack")
            )
            continue
        want = pins.get(_norm(dist))
        ok = want is None or want == have
        checks.append(
            Check(
                label,
                have + ("" if ok or want is None else f" (lock pins {want})"),
                ok=ok,
                fix=f"reinstall from the lock: `rm .venv/.graft-setup-stamp && make setup` (wants {dist}=={want})",
            )
        )

    # Legacy Keras must be active before TensorFlow is imported: time the imports users will pay for.
    env.force_legacy_keras()
    t0 = time.perf_counter()
    import tensorflow as tf

    t_tf = time.perf_counter() - t0
    flavour = env.keras_flavour()
    checks.append(
        Check(
            "legacy Keras",
            f"{'active' if flavour == 'tf_keras' else 'NOT active'} (tf.keras = {tf.keras.Model.__module__.split('.')[0]},"
            f" TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')})",
            ok=flavour == "tf_keras",
            fix="set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported (graft's entry points do this)",
        )
    )
    t1 = time.perf_counter()
    import tfx.v1  # noqa: F401

    t_tfx = time.perf_counter() - t1 + t_tf
    # Whether the bytecode is there is read from the files, not guessed from the import time (which a busy machine
    # stretches): without .pyc files `import tfx.v1` takes ~40 s instead of ~6-13 s here.
    missing = _modules_without_bytecode()
    checks.append(
        Check(
            "import tfx.v1",
            f"{t_tfx:.1f} s (tensorflow {t_tf:.1f} s)"
            + (f"; no compiled bytecode for {', '.join(missing)}" if missing else "; bytecode compiled"),
            ok=not missing,
            fix="bytecode is missing: reinstall with `rm .venv/.graft-setup-stamp && make setup` (compiles .pyc)",
        )
    )
    gpus = tf.config.list_physical_devices("GPU")
    checks.append(
        Check("GPUs", ", ".join(g.name for g in gpus) if gpus else "none visible (training runs on CPU)")
    )
    target = Path(root).expanduser().absolute()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    checks.append(
        Check(
            "free disk",
            f"{free_gb:.1f} GB at {target}",
            ok=free_gb >= MIN_FREE_GB,
            fix=f"free at least {MIN_FREE_GB:.0f} GB there or pass another --root",
        )
    )
    writable = _can_write(probe)
    checks.append(
        Check(
            "output root writable",
            f"{'yes' if writable else 'no'} ({probe})",
            ok=writable,
            fix="choose a writable --root",
        )
    )
    return Report(checks)


def _can_write(folder: Path) -> bool:
    """Whether a file can really be created there, as `graft run` will: os.access says yes to root on read-only
    file systems such as /sys, and `graft run` then refuses the root."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".graft-doctor-"):
            return True
    except OSError:
        return False
