"""What Graft's container image (kubeflow/Dockerfile) must provide, checked where it can be checked.

Every task of a compiled pipeline runs ``python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor
--executor_class_path CLASS ...`` (ExampleGen's driver hook: ``...v2.file_based_example_gen.driver``) in this image.
The executors then import the user functions by dotted path (``preprocessing_fn=``, ``run_fn=``): the image must
hold the project's code, not a bucket. This module lists those needs once; ``python -m graft.kubeflow.image``
imports all of them in a fresh interpreter and exits 1 naming what is missing. The Dockerfile runs it as its last
build step, the tests run it here, and ``graft submit --target local`` gives each task the same environment.
"""

from __future__ import annotations

import importlib
import os
import sys

# The image's ENV (kubeflow/Dockerfile's ENV lines must set exactly these; a test checks it).
IMAGE_ENV = {
    # Keras 2 (tf-keras) before anything imports TensorFlow: hub.KerasLayer cannot live in a Keras 3 model.
    "TF_USE_LEGACY_KERAS": "1",
    # Task logs reach the cluster's log viewer as they are written.
    "PYTHONUNBUFFERED": "1",
}

# The container entry points the compiled spec names (its `command`, and the ExampleGen driver's hook).
ENTRY_MODULES = (
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver",
)


def dag_executor_classes() -> dict[str, str]:
    """component id -> ``--executor_class_path`` of every container task of Graft's DAG, read from the DAG itself
    (built for Kubeflow from a config that needs no I/O: TFRecords named by a gs:// glob, a 32x32 backbone)."""
    from tfx.dsl.components.common.resolver import Resolver
    from tfx.utils import name_utils

    from graft.pipeline import dag, dag_inputs
    from graft.pipeline.config import GraftConfig

    cfg = GraftConfig()
    cfg.data.path = "gs://graft-image-check/examples/*.tfrecord.gz"
    cfg.backbone.handle = "gs://graft-image-check/backbone"
    backbone = {"height": 32, "width": 32, "channels": 3}
    inputs = dag_inputs.resolve(cfg, read_data=False)
    pipeline = dag.create_pipeline(
        cfg, backbone, inputs, pipeline_root="gs://graft-image-check/root", for_kubeflow=True
    )
    return {
        c.id: name_utils.get_full_name(c.executor_spec.executor_class)
        for c in pipeline.components
        if not isinstance(c, Resolver)  # resolvers are queries, not containers
    }


# The user functions the executors import by dotted path.
USER_FUNCTIONS = (
    "graft.components.preprocessing.preprocessing_fn",
    "graft.components.trainer.run_fn",
    # Task text: the Evaluator's module_path hook (TF Text ops registered before TFMA loads the model).
    "graft.components.text_eval.custom_eval_shared_model",
)
# What only the text DAG's tasks import (its ExampleGen's executor, the token gate, TF Text's ops).
TEXT_IMPORTS = (
    "graft.components.text_example_gen.executor.Executor",
    "graft.components.token_gate.TokenGate",
    "graft.components.token_gate.stats_options_updater_fn",
    "tensorflow_text.BertTokenizer",
)


def _import_path(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def initial_environ() -> dict[str, str]:
    """The environment this process was started with (before ``import graft`` set anything), on Linux."""
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environ)
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def check(extra_classes: tuple[str, ...] = ()) -> list[str]:
    """Import everything a task needs; returns the problems (empty: the environment can run every task)."""
    problems = []
    start_env = initial_environ()
    for k, v in IMAGE_ENV.items():
        # The process's own start environment: TFX's entry points import TensorFlow before any Graft code runs.
        if start_env.get(k) != v:
            problems.append(
                f"environment variable {k} is {start_env.get(k)!r} at start, the image sets {v!r}"
            )
    for m in ENTRY_MODULES:
        try:
            importlib.import_module(m)
        except Exception as e:  # noqa: BLE001 - report every failure
            problems.append(f"cannot import the entry point {m}: {type(e).__name__}: {e}")
    try:
        classes = tuple(dag_executor_classes().values())
    except Exception as e:  # noqa: BLE001
        classes = ()
        problems.append(f"cannot build Graft's DAG: {type(e).__name__}: {e}")
    for dotted in (*classes, *extra_classes, *USER_FUNCTIONS, *TEXT_IMPORTS):
        try:
            _import_path(dotted)
        except Exception as e:  # noqa: BLE001
            problems.append(f"cannot import {dotted}: {type(e).__name__}: {e}")
    try:
        from graft import env

        env.assert_legacy_keras()
    except Exception as e:  # noqa: BLE001
        problems.append(f"legacy Keras is not active: {e}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m graft.kubeflow.image [pipeline.json ...]``: also checks the executor classes of those specs."""
    extra: list[str] = []
    for path in argv if argv is not None else sys.argv[1:]:
        from graft.kubeflow import spec

        compiled = spec.load(path)
        extra += [c for t in compiled.tasks if (c := compiled.executor_class(t))]
    problems = check(tuple(dict.fromkeys(extra)))
    if problems:
        print("graft image check FAILED:", *problems, sep="\n  - ", file=sys.stderr)
        return 1
    n = len(ENTRY_MODULES) + len(set(dag_executor_classes().values()) | set(extra)) + len(USER_FUNCTIONS)
    print(
        f"graft image check: ok ({n} entry points, executors and user functions import; legacy Keras active)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
