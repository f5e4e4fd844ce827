"""TFX's own penguin example, as installed, in a process of its own: the reference of ``bench_pipeline``.

Run by ``bench_pipeline`` as ``python bench/penguin_child.py WORK_DIR DATA_ROOT BEAM_ARGS_JSON`` in a fresh
process whose environment has no ``TF_USE_LEGACY_KERAS`` (so TensorFlow binds Keras 3, the Keras the example and
its Tuner are written for). This file must never import graft: ``import graft`` would switch the process to
tf-keras.

What runs is ``create_pipeline`` of ``tfx/examples/penguin/penguin_pipeline_local.py``, unmodified, called with the
arguments of that file's ``__main__`` for ``--model_framework=keras`` except:

* ``enable_bulk_inferrer=False``: BulkInferrer (tfx_bsl RunInference, a TF1 session) cannot load a Keras 3
  SavedModel in this stack, so with it on the example fails;
* the paths: a fresh ``WORK_DIR`` instead of ``~/tfx`` and ``~/penguin`` (a cold run every time), with the
  example's own ``penguin_utils_keras.py`` copied there as the module file, as the example's instructions say;
* ``beam_pipeline_args``: Beam's in-memory DirectRunner (Graft's default, passed in by the parent) instead of
  ``__main__``'s multi-processing one, which is 2x slower on 2 cores (STACK.md) and not what Graft uses.

Tuning stays on (``__main__`` enables it for keras), so the run has the Tuner, as the example does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time


def main(argv: list[str]) -> int:
    work, data_root, beam_args = argv[0], argv[1], json.loads(argv[2])
    if os.environ.get("TF_USE_LEGACY_KERAS"):
        print("penguin_child: TF_USE_LEGACY_KERAS is set; the example must run on Keras 3", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    import absl
    from tfx import v1 as tfx
    from tfx.examples.penguin import penguin_pipeline_local as example

    absl.logging.set_verbosity(absl.logging.INFO)  # as the example's __main__
    imported = time.perf_counter() - t0

    name = "penguin_local_keras"
    penguin_root = os.path.join(work, "penguin")
    tfx_root = os.path.join(work, "tfx")
    os.makedirs(penguin_root, exist_ok=True)
    module_file = os.path.join(penguin_root, "penguin_utils_keras.py")
    shutil.copy(os.path.join(os.path.dirname(example.__file__), "penguin_utils_keras.py"), module_file)

    pipeline = example.create_pipeline(
        pipeline_name=name,
        pipeline_root=os.path.join(tfx_root, "pipelines", name),
        data_root=data_root,
        module_file=module_file,
        accuracy_threshold=0.6,
        serving_model_dir=os.path.join(penguin_root, "serving_model", name),
        metadata_path=os.path.join(tfx_root, "metadata", name, "metadata.db"),
        user_provided_schema_path=None,
        enable_tuning=True,
        enable_bulk_inferrer=False,
        examplegen_input_config=example._examplegen_input_config,
        examplegen_range_config_date=example._examplegen_range_config_date,
        resolver_range_config=example._resolver_range_config,
        beam_pipeline_args=beam_args,
        enable_transform_input_cache=True,
        enable_example_diff=False,
    )
    t1 = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    ran = time.perf_counter() - t1

    import keras

    pushed = os.path.join(penguin_root, "serving_model", name)
    versions = sorted(os.listdir(pushed)) if os.path.isdir(pushed) else []
    print(
        "PENGUIN_RESULT "
        + json.dumps(
            {
                "import_seconds": imported,
                "run_seconds": ran,
                "keras_version": keras.__version__,
                "pushed_versions": versions,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
