"""Beam executor of the text ExampleGen: manifests / .txt files / TFRecords -> tf.Examples {text, label, source}.

The image ExampleGen's semantics, for text: one Beam pipeline lists the inputs, reads every file in parallel
(:mod:`.rows` decides each row), splits single-split forms by TFX's own hash of ``source``, writes the splits
with TFX's ``WriteSplit`` and, in the same pipeline, counts examples per split and label and collects the bad rows.
After the pipeline: ``data_report.json`` + ``skipped_files.json`` (the quarantined rows with their reasons) in the
artifact, the same custom properties, and the run stops (:class:`TooManyBadFilesError`) when more than
``max_bad_fraction`` of the rows are bad, or when nothing usable was read.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import os  # noqa: E402
import posixpath  # noqa: E402
from typing import Any  # noqa: E402

import apache_beam as beam  # noqa: E402
from tfx.components.example_gen import base_example_gen_executor, utils, write_split  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402
from tfx.types import artifact_utils, standard_component_specs  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from graft.components.data_errors import DataValidationError, TooManyBadFilesError  # noqa: E402
from graft.components.image_example_gen import executor as image_executor, files  # noqa: E402
from graft.components.image_example_gen import report as report_mod  # noqa: E402
from graft.components.text_example_gen import layout, rows  # noqa: E402

TFRECORD_TEXT_KEYS = (rows.TEXT_KEY, "sentence", "review")
TFRECORD_LABEL_KEYS = (rows.LABEL_KEY, "label_text", "class")
make_custom_config = image_executor.make_custom_config
read_settings = image_executor.read_settings
_WORK_DIR = "_graft_work"


def make_example(row: rows.Row):
    import tensorflow as tf

    def b(v: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8", "surrogateescape")]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={rows.TEXT_KEY: b(row.text), rows.LABEL_KEY: b(row.label), rows.SOURCE_KEY: b(row.source)}
        )
    )


class ReadTextFn(beam.DoFn):
    """(path, relative path, label or '') -> examples, and bad rows to the 'bad' output."""

    def __init__(self, settings: dict):
        self._s = settings

    def process(self, item):
        path, rel, label = item
        data, problem = files.read_file_checked(path)
        if problem:
            yield beam.pvalue.TaggedOutput("bad", rows.bad(rel, problem))
            return
        max_bytes = int(self._s["max_text_bytes"])
        form = self._s["form"]
        if form in ("manifest", "split_manifests"):
            good, bad = rows.parse_manifest(
                data, rel, self._s.get("text_column") or None, self._s.get("label_column") or None, max_bytes
            )
        elif form == "tfrecord":
            good, bad = self._tfrecord(path, rel, max_bytes)
        else:
            row, b = rows.parse_text_file(data, rel, label, max_bytes)
            good, bad = ([row], []) if row else ([], [b])
        for row in good:
            yield make_example(row)
        for b in bad:
            yield beam.pvalue.TaggedOutput("bad", b)

    @staticmethod
    def _tfrecord(path: str, rel: str, max_bytes: int):
        import tensorflow as tf

        good, bad = [], []
        compression = "GZIP" if path.endswith(".gz") else ""
        try:
            records = list(tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator())
        except tf.errors.OpError as e:
            return [], [rows.bad(rel, f"not a readable TFRecord file ({type(e).__name__})")]
        for i, raw in enumerate(records):
            source = f"{rel}:{i}"
            ex = tf.train.Example()
            try:
                ex.ParseFromString(raw)
            except Exception:  # noqa: BLE001  (protobuf's DecodeError)
                bad.append(rows.bad(source, "record is not a tf.train.Example"))
                continue
            feats = ex.features.feature
            text = next((rows.value_of(feats[k]) for k in TFRECORD_TEXT_KEYS if k in feats), None)
            label = next((rows.value_of(feats[k]) for k in TFRECORD_LABEL_KEYS if k in feats), None)
            reason = rows.check_text(text, source, max_bytes) or (
                None if label and label.strip() else "missing label"
            )
            if reason:
                bad.append(rows.bad(source, reason))
            else:
                good.append(rows.Row(text.strip(), label.strip(), source))
        return good, bad


def _inputs(settings: dict, input_base: str, pattern: str) -> list[tuple[str, str, str]]:
    out = []
    for p in files.glob_pattern(input_base, pattern):
        rel = os.path.relpath(p, input_base).replace(os.sep, "/")
        label = (
            posixpath.basename(posixpath.dirname(rel)) if settings["form"] in ("folders", "presplit") else ""
        )
        out.append((p, rel, label))
    return out


@beam.ptransform_fn
def _ReadSplit(pipeline, settings: dict, input_base: str, pattern: str):  # noqa: N802
    outputs = (
        pipeline
        | "List" >> beam.Create(_inputs(settings, input_base, pattern))
        | "Reshuffle" >> beam.Reshuffle()
        | "Read" >> beam.ParDo(ReadTextFn(settings)).with_outputs("bad", main="examples")
    )
    return outputs.examples, outputs.bad


def _label_of(example) -> str:
    return example.features.feature[rows.LABEL_KEY].bytes_list.value[0].decode("utf-8", "surrogateescape")


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """The text ExampleGen's executor (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        @beam.ptransform_fn
        def _TextToExample(pipeline, exec_properties, split_pattern):  # noqa: N802
            settings = read_settings(exec_properties)
            base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
            examples, _ = pipeline | "Read" >> _ReadSplit(settings, base, split_pattern)  # pylint: disable=no-value-for-parameter
            return examples

        return _TextToExample

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        settings = read_settings(exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        examples_list = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples_list)
        split_names = utils.generate_output_split_names(input_config, output_config)
        # [[split, hash buckets], ...] of train when the data has no val (and/or test): carved out of train.
        carve = [(str(name), int(b)) for name, b in settings.get("carve") or []]
        split_names += [name for name, _ in carve if name not in split_names]
        split_names = [s for s in ("train", "val", "test") if s in split_names] + [
            s for s in split_names if s not in ("train", "val", "test")
        ]
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        work = os.path.join(artifact.uri, _WORK_DIR)
        image_executor._makedirs(work)  # noqa: SLF001
        counts_path, bad_path = os.path.join(work, "counts.json"), os.path.join(work, "bad.json")

        pipeline = self._make_beam_pipeline()
        splits: dict[str, Any] = {}
        bads = []
        if output_config.split_config.splits:
            examples, bad = pipeline | "Read" >> _ReadSplit(
                settings, input_base, input_config.splits[0].pattern
            )  # pylint: disable=no-value-for-parameter
            splits = image_executor.hash_split(examples, output_config.split_config, split_names)
            bads.append(bad)
        else:
            for s in input_config.splits:
                examples, bad = pipeline | f"Read[{s.name}]" >> _ReadSplit(settings, input_base, s.pattern)  # pylint: disable=no-value-for-parameter
                splits[s.name] = examples
                bads.append(bad)
        if carve:
            carve_config = example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b) for n, b in carve],
                partition_feature_name=rows.SOURCE_KEY,
            )
            parts = image_executor._partition(splits["train"], "CarveTrainBySourceHash", carve_config)  # noqa: SLF001
            splits.update({name: parts[i] for i, (name, _) in enumerate(carve)})
        image_executor.write_splits_and_counts(
            splits,
            bads,
            examples_list,
            exec_properties,
            counts_path,
            bad_path,
            _label_of,
            image_executor.is_distributed(self._beam_pipeline_args),
        )
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        pipeline.run().wait_until_finish()
        counts_raw = report_mod._read_json(counts_path)  # noqa: SLF001
        skipped = sorted(report_mod._read_json(bad_path), key=lambda b: (b["path"], b["reason"]))  # noqa: SLF001
        image_executor._rmtree(work)  # noqa: SLF001
        finish(artifact, settings, input_base, exec_properties.get(utils.SPAN_PROPERTY_NAME), split_names, counts_raw, skipped)  # fmt: skip
        if file_format:
            from tfx.components.util import examples_utils

            examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))


def finish(artifact, settings, input_base, span, split_names, counts_raw, skipped) -> dict:
    """Report, custom properties, and the bad-fraction stop (rows, not files, are counted for text)."""
    try:
        return image_executor.Executor._finish(  # noqa: SLF001 - the same report and properties as for images
            artifact, settings, input_base, span, split_names, counts_raw, skipped
        )
    except TooManyBadFilesError as e:
        n_bad = len(skipped)
        n_all = n_bad + sum(int(n) for _, n in counts_raw)
        raise TooManyBadFilesError(
            f"{n_bad} of {n_all} text rows ({n_bad / n_all:.1%}) are not usable, more than data.max_bad_fraction="
            f"{float(settings['max_bad_fraction']):g}. First ones: {image_executor._first_reasons(skipped)}. "  # noqa: SLF001
            "All of them are listed in skipped_files.json beside the ExampleGen's output. Fix or remove these "
            "rows, or raise data.max_bad_fraction to train on the rest."
        ) from e
    except DataValidationError as e:
        if sum(int(n) for _, n in counts_raw):
            raise
        raise DataValidationError(
            f"no usable text row in {settings.get('data_path') or input_base}"
            + (
                f" ({len(skipped)} rows skipped; first: {image_executor._first_reasons(skipped)})"
                if skipped
                else ""
            )  # noqa: SLF001
            + f". {layout.LAYOUT_HELP}"
        ) from e
