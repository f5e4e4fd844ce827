"""``TextExampleGen``: a TFX FileBasedExampleGen for text classification data (five forms, stable splits, bad rows).

A real ``FileBasedExampleGen`` subclass, like the image one: TFX's span/version resolution and input fingerprint
(the image ExampleGen's robust local driver), the span on the output artifact, KubeflowV2's ExampleGen driver on
Vertex. Only the executor (Beam) is text-specific.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

from tfx.components.example_gen.component import FileBasedExampleGen  # noqa: E402
from tfx.dsl.components.base import executor_spec  # noqa: E402

from graft.components.image_example_gen.driver import ImageFileDriver  # noqa: E402
from graft.components.text_example_gen import executor  # noqa: E402
from graft.components.text_example_gen.layout import TextDataLayout  # noqa: E402
from graft.components.text_example_gen.rows import DEFAULT_MAX_TEXT_BYTES  # noqa: E402


class TextExampleGen(FileBasedExampleGen):
    """Manifests / GLUE split folders / class folders of .txt / pre-split trees / TFRecords -> {text, label, source}."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = (
        ImageFileDriver  # robust local listing, span resolution and fingerprint: not image-specific
    )

    @classmethod
    def from_layout(
        cls,
        data_layout: TextDataLayout,
        *,
        fractions: dict[str, float],
        max_bad_fraction: float,
        data_path: str = "",
        text_column: str = "",
        label_column: str = "",
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    ) -> TextExampleGen:
        """The component for a detected layout; only knobs that change the output reach its exec properties."""
        settings = {
            "form": data_layout.form,
            "max_bad_fraction": float(max_bad_fraction),
            "max_text_bytes": int(max_text_bytes),
            "text_column": text_column,
            "label_column": label_column,
            "data_path": data_path or data_layout.input_base,
        }
        carve = data_layout.carve(fractions)
        if carve:  # only then: a val fraction change must not re-run ExampleGen on fully split data
            settings["carve"] = carve
        return cls(
            input_base=data_layout.input_base,
            input_config=data_layout.input_config(),
            output_config=data_layout.output_config(fractions),
            custom_config=executor.make_custom_config(settings),
        )
