"""``ImageExampleGen``: a TFX FileBasedExampleGen for images (four input forms, stable splits, skipped-file list).

A real ``FileBasedExampleGen`` subclass, so TFX treats it like its own: span/version resolution and the input
fingerprint (cache key) in the driver, the span recorded on the output artifact, KubeflowV2DagRunner's
ExampleGen driver container on Vertex. Only the executor (Beam) and, for local data, the driver are Graft's.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

from tfx.components.example_gen.component import FileBasedExampleGen  # noqa: E402
from tfx.dsl.components.base import executor_spec  # noqa: E402

from graft.components.image_example_gen import executor  # noqa: E402
from graft.components.image_example_gen.driver import ImageFileDriver  # noqa: E402
from graft.components.image_example_gen.layout import DataLayout  # noqa: E402
from graft.components.image_example_gen.config import DataConfig, normalize_data_path  # noqa: E402


class ImageExampleGen(FileBasedExampleGen):
    """Images in folders / a pre-split tree / a CSV manifest / TFRecords -> Examples {train, val, test}."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = ImageFileDriver

    @classmethod
    def from_layout(cls, data_layout: DataLayout, data: DataConfig) -> ImageExampleGen:
        """The component for a detected layout. Only data.* knobs that change the output reach its exec
        properties (TFX's cache key): settings such as train.* never re-run ExampleGen."""
        settings = {
            "form": data_layout.form,
            "max_bad_fraction": float(data.max_bad_fraction),
            "max_image_pixels": float(data.max_image_pixels),
            "data_path": normalize_data_path(data.path),
        }
        if data.allowed_roots and data_layout.form == "csv":  # only then: the cache key of other runs stays
            settings["allowed_roots"] = [normalize_data_path(r) for r in data.allowed_roots]
        carve = data_layout.carve(data)
        if carve:  # only then: a val_fraction change must not re-run ExampleGen on a fully pre-split tree
            settings["carve"] = carve
        return cls(
            input_base=data_layout.input_base,
            input_config=data_layout.input_config(),
            output_config=data_layout.output_config(data),
            custom_config=executor.make_custom_config(settings),
        )
