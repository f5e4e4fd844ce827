"""Beam executor of the image ExampleGen: image files (or TFRecords) -> tf.Examples in train / val / test.

One Beam pipeline per run, in two passes over the inputs (why two: ``readers.py``):
  list   the inputs, here in the executor process (``listing.py``: cheap, and robust to odd names);
  check  every file in parallel (:func:`files.check_image`) -> content-hash keys + the skipped files;
  group  the keys by hash (``duplicates.py``): one picture under two labels is quarantined, same-label copies
         are listed;
  read   the files again, leave out what was refused, split by a stable hash of ``source_path`` (TFX's own
         partition function, so the split of a file never changes when others are added), and write the shards
         as the examples stream; count examples per split and class in the same pass.
A pre-split tree that lacks val/ (or val/ and test/) gets them carved out of train/ by the same hash, with
``data.val_fraction`` / ``data.test_fraction`` of its files (``layout.carve_splits``); test/ is never touched.
After the pipeline: ``data_report.json`` + ``skipped_files.json`` in the artifact, custom properties, a log line
per skipped file, and the run stops (:class:`TooManyBadFilesError`) above ``data.max_bad_fraction``.

Memory: on the in-memory DirectRunner nothing holds more than one element's image bytes at a time -- no group-by
or reshuffle of examples (TFX's ``WriteSplit`` reshuffles the serialized examples, which that runner materialises
whole; here shards are written as they stream, and the files are listed in a stable pseudo-random order so that
the shards are not sorted by class). On a distributed runner (``--runner`` other than the DirectRunner) the
listed files are reshuffled across workers and TFX's ``WriteSplit`` is used unchanged.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import hashlib  # noqa: E402, I001
import json
import os
from typing import Any

import apache_beam as beam  # noqa: E402
from absl import logging  # noqa: E402
from google.protobuf import json_format, struct_pb2  # noqa: E402
from tfx.components.example_gen import base_example_gen_executor, utils, write_split  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402
from tfx.types import artifact_utils, standard_component_specs  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from graft.components import features  # noqa: E402
from graft.components.data_errors import NoImagesFoundError, TooManyBadFilesError  # noqa: E402
from graft.components.image_example_gen import files, layout, readers  # noqa: E402
from graft.components.image_example_gen import report as report_mod  # noqa: E402
from graft.components.image_example_gen.duplicates import FindDuplicates  # noqa: E402

# Re-exported: `graft schema infer` and the tests list and build examples exactly as a run does.
from graft.components.image_example_gen.listing import csv_candidates, folder_candidates  # noqa: E402, F401
from graft.components.image_example_gen.readers import make_example  # noqa: E402, F401

_WORK_DIR = "_graft_work"
_MAX_LOGGED = 200
_DIRECT_RUNNERS = ("", "direct", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner")


# ---- settings (the ExampleGen's CustomConfig: a Struct packed in an Any) --------------------------------------
def make_custom_config(settings: dict[str, Any]) -> example_gen_pb2.CustomConfig:
    struct = struct_pb2.Struct()
    struct.update(settings)
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def read_settings(exec_properties: dict[str, Any]) -> dict[str, Any]:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        raise ValueError(
            "the image ExampleGen needs its custom_config (settings); build it with ImageExampleGen"
        )
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(raw, config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    return json_format.MessageToDict(struct)


def is_distributed(beam_args: list[str]) -> bool:
    """Whether the Beam args pick a runner other than the (in-process) DirectRunner; the last --runner wins."""
    runner = ""
    for a in beam_args or []:
        if a.startswith("--runner="):
            runner = a.split("=", 1)[1]
    return runner.strip().lower() not in _DIRECT_RUNNERS


# ---- the passes of one input pattern ----------------------------------------------------------------------------
def _stable_order(items: list, key) -> list:
    """A fixed pseudo-random order (sha1 of the name): shards written as they stream are not sorted by class."""
    return sorted(items, key=lambda it: hashlib.sha1(key(it)).digest())


def _list_split(pipeline, n: str, settings: dict, input_base: str, pattern: str, distributed: bool):
    """(listed inputs, listing problems) of one pattern, as PCollections."""
    form = settings["form"]
    ignored: list[str] = []
    if form == "tfrecord":
        items = _stable_order(
            [files.to_bytes(p) for p in files.glob_pattern(input_base, pattern)], lambda p: p
        )
        listed_bad: list[dict] = []
    else:
        if form == "csv":
            candidates, listed_bad = csv_candidates(input_base, pattern, settings.get("allowed_roots") or ())
        else:
            candidates, listed_bad, ignored = folder_candidates(input_base, pattern)
        items = _stable_order(
            [(files.to_bytes(c.path), files.to_bytes(c.rel), c.label) for c in candidates], lambda it: it[1]
        )
    if ignored:
        logging.warning(
            "Ignored %d folder(s) inside class folders of split %s (images must sit directly in a class folder): %s",
            len(ignored),
            n,
            ", ".join(ignored[:10]),
        )
    listed = pipeline | f"List[{n}]" >> beam.Create(items, reshuffle=distributed)
    if distributed:
        listed = listed | f"ReshuffleFiles[{n}]" >> beam.Reshuffle()
    return listed, pipeline | f"ListingProblems[{n}]" >> beam.Create(listed_bad)


def _record_base(input_base: str, pattern: str) -> str:
    return files.join(input_base, layout.data_root_of(pattern))


def _check(listed, n: str, settings: dict, input_base: str, pattern: str):
    """Pass 1 -> (keys (sha256, (source_path, label)), bad entries, keys pass 2 must drop)."""
    max_pixels = int(settings["max_image_pixels"])
    if settings["form"] == "tfrecord":
        fn = readers.CheckTFRecordFileFn(max_pixels, _record_base(input_base, pattern))
    else:
        fn = readers.CheckImageFn(max_pixels)
    out = listed | f"Check[{n}]" >> beam.ParDo(fn).with_outputs(readers.BAD, readers.DROP, main="keys")
    return out.keys, out[readers.BAD], out[readers.DROP]


def _read(listed, n: str, settings: dict, input_base: str, pattern: str, drop):
    """Pass 2 -> (tf.Examples of the files not in ``drop``, files that vanished between the passes)."""
    if settings["form"] == "tfrecord":
        fn = readers.ReadTFRecordFileFn(int(settings["max_image_pixels"]), _record_base(input_base, pattern))
    else:
        fn = readers.ReadImageFn()
    out = listed | f"Read[{n}]" >> beam.ParDo(fn, drop=drop).with_outputs(readers.BAD, main="examples")
    return out.examples, out[readers.BAD]


def _partition(pcoll, label: str, split_config: example_gen_pb2.SplitConfig) -> list:
    """TFX's own hash split on ``split_config.partition_feature_name`` (source_path), kept identical."""
    buckets, total = [], 0
    for s in split_config.splits:
        total += s.hash_buckets
        buckets.append(total)
    parts = pcoll | label >> beam.Partition(
        base_example_gen_executor._PartitionFn,  # noqa: SLF001 - TFX's own hash split, kept identical
        len(buckets),
        buckets,
        split_config,
    )
    return [parts[i] for i in range(len(buckets))]


def _write(pcoll, name: str, uri: str, exec_properties: dict, distributed: bool) -> None:
    """Shards as the examples stream (DirectRunner), or TFX's WriteSplit (it reshuffles; fine when distributed)."""
    parquet = (
        exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        == example_gen_pb2.PayloadFormat.FORMAT_PARQUET
    )
    if distributed or parquet:
        _ = pcoll | f"WriteSplit[{name}]" >> write_split.WriteSplit(  # pylint: disable=no-value-for-parameter
            uri,
            exec_properties.get(
                standard_component_specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FILE_FORMAT_UNSPECIFIED
            ),
            exec_properties,
        )
        return
    _ = (
        pcoll
        | f"Serialize[{name}]" >> beam.ParDo(write_split.MaybeSerialize())
        | f"Write[{name}]"
        >> beam.io.WriteToTFRecord(os.path.join(uri, write_split.DEFAULT_FILE_NAME), file_name_suffix=".gz")
    )


def hash_split(examples, split_config: example_gen_pb2.SplitConfig, split_names) -> dict:
    """TFX's hash partition of one PCollection into the named output splits (shared with the text ExampleGen)."""
    return dict(zip(split_names, _partition(examples, "SplitByPathHash", split_config), strict=True))


def write_splits_and_counts(
    splits, bads, examples_list, exec_properties, counts_path, bad_path, label_of, distributed: bool
):
    """Write every split as it streams (:func:`_write`), count examples per (split, label) and collect the bad
    inputs, as JSON files, in the same pipeline (shared with the text ExampleGen)."""
    keyed = []
    for name, pcoll in splits.items():
        _write(pcoll, name, artifact_utils.get_split_uri(examples_list, name), exec_properties, distributed)
        keyed.append(pcoll | f"Key[{name}]" >> beam.Map(lambda ex, n=name: (n, label_of(ex))))
    _ = (
        keyed
        | "AllKeys" >> beam.Flatten()
        | "CountPerSplitClass" >> beam.combiners.Count.PerElement()
        | "CountsToList" >> beam.combiners.ToList()
        | "WriteCounts" >> beam.ParDo(_WriteJson(counts_path))
    )
    _to_list_file(bads, "Bad", bad_path)


class _WriteJson(beam.DoFn):
    def __init__(self, path: str):
        self._path = path

    def process(self, value):
        report_mod.write_json(self._path, value)


def _to_list_file(pcolls, n: str, path: str) -> None:
    _ = (
        pcolls
        | f"Flatten{n}" >> beam.Flatten()
        | f"{n}ToList" >> beam.combiners.ToList()
        | f"Write{n}" >> beam.ParDo(_WriteJson(path))
    )


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """The image ExampleGen's executor (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        """For TFX's generic ``GenerateExamplesByBeam``: the good examples of one split pattern (no duplicate
        quarantine: that needs every split; :meth:`Do` does it)."""
        distributed = is_distributed(self._beam_pipeline_args)

        @beam.ptransform_fn
        def _ImagesToExample(pipeline, exec_properties, split_pattern):  # noqa: N802
            settings = read_settings(exec_properties)
            base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
            listed, _ = _list_split(pipeline, "all", settings, base, split_pattern, distributed)
            _, _, drop = _check(listed, "all", settings, base, split_pattern)
            drop = beam.pvalue.AsDict(drop | "DropKeys" >> beam.Map(lambda k: (k, None)))
            return _read(listed, "all", settings, base, split_pattern, drop)[0]

        return _ImagesToExample

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        self._log_startup(input_dict, output_dict, exec_properties)
        settings = read_settings(exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        span = exec_properties.get(utils.SPAN_PROPERTY_NAME)
        distributed = is_distributed(self._beam_pipeline_args)
        # [[split, hash buckets], ...] of train/ when a pre-split tree lacks val/ (and test/): carved out of train.
        carve = [(str(name), int(b)) for name, b in settings.get("carve") or []]

        examples_list = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples_list)
        split_names = utils.generate_output_split_names(input_config, output_config)
        split_names += [name for name, _ in carve if name not in split_names]
        split_names = [s for s in features.SPLITS if s in split_names] + [
            s for s in split_names if s not in features.SPLITS
        ]
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        work = os.path.join(artifact.uri, _WORK_DIR)
        _makedirs(work)
        paths = {k: os.path.join(work, f"{k}.json") for k in ("counts", "bad", "duplicates")}
        logging.info(
            "Reading %s data from %s with patterns %s%s",
            settings["form"],
            input_base,
            list(input_config.splits),
            f"; carving {', '.join(n for n, _ in carve if n != features.TRAIN_SPLIT)} out of train"
            if carve
            else "",
        )

        pipeline = self._make_beam_pipeline()
        if output_config.split_config.splits:
            if len(input_config.splits) != 1:
                raise ValueError("output splits need exactly one input split")
            patterns = {"all": input_config.splits[0].pattern}
        else:
            patterns = {s.name: s.pattern for s in input_config.splits}
        listed, bads, keys, drops = {}, [], [], []
        for n, pattern in patterns.items():
            listed[n], listing_bad = _list_split(pipeline, n, settings, input_base, pattern, distributed)
            k, bad, drop = _check(listed[n], n, settings, input_base, pattern)
            bads += [listing_bad, bad]
            keys.append(k)
            drops.append(drop)
        conflicts, dup_bad, dup_groups = keys | "AllContentKeys" >> beam.Flatten() | FindDuplicates()
        drop = beam.pvalue.AsDict(
            [conflicts, *drops]
            | "AllDropKeys" >> beam.Flatten()
            | "DropKeys" >> beam.Map(lambda k: (k, None))
        )
        examples = {}
        for n, pattern in patterns.items():
            examples[n], vanished = _read(listed[n], n, settings, input_base, pattern, drop)
            bads.append(vanished)
        bads.append(dup_bad)

        if output_config.split_config.splits:
            splits = hash_split(examples["all"], output_config.split_config, split_names)
        else:
            splits = dict(examples)
        if carve:
            carve_config = example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b) for n, b in carve],
                partition_feature_name=features.PATH_KEY,
            )
            parts = _partition(splits[features.TRAIN_SPLIT], "CarveTrainByPathHash", carve_config)
            splits.update({name: parts[i] for i, (name, _) in enumerate(carve)})

        write_splits_and_counts(
            splits,
            bads,
            examples_list,
            exec_properties,
            paths["counts"],
            paths["bad"],
            readers.label_of,
            distributed,
        )
        _to_list_file([dup_groups], "Duplicates", paths["duplicates"])
        pipeline.run().wait_until_finish()

        counts_raw = report_mod._read_json(paths["counts"])  # noqa: SLF001
        skipped = sorted(report_mod._read_json(paths["bad"]), key=lambda b: (b["path"], b["reason"]))  # noqa: SLF001
        duplicates = sorted(report_mod._read_json(paths["duplicates"]), key=lambda g: g["paths"])  # noqa: SLF001
        _rmtree(work)
        carved = _carved_summary(carve)
        self._finish(
            artifact, settings, input_base, span, split_names, counts_raw, skipped, duplicates, carved
        )

        output_payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        output_file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        if output_payload_format:
            from tfx.components.util import examples_utils

            examples_utils.set_payload_format(artifact, output_payload_format)
        if output_file_format:
            from tfx.components.util import examples_utils

            examples_utils.set_file_format(artifact, write_split.to_file_format_str(output_file_format))

    @staticmethod
    def _finish(
        artifact, settings, input_base, span, split_names, counts_raw, skipped, duplicates=(), carved=None
    ) -> dict:
        counts: dict[str, dict[str, int]] = {s: {} for s in split_names}
        for (split, label), n in counts_raw:
            counts.setdefault(split, {})[label] = int(n)
        counts = {s: dict(sorted(c.items())) for s, c in counts.items()}
        classes = sorted({c for per in counts.values() for c in per})
        num_examples = sum(sum(c.values()) for c in counts.values())
        num_files = num_examples + len(skipped)
        bad_fraction = len(skipped) / num_files if num_files else 0.0
        data_path = settings.get("data_path") or input_base
        rep = {
            "form": settings["form"],
            "data_path": data_path,
            "span": span,
            "num_files": num_files,
            "num_examples": num_examples,
            "num_skipped": len(skipped),
            "bad_fraction": bad_fraction,
            "max_bad_fraction": float(settings["max_bad_fraction"]),
            "classes": classes,
            "counts": counts,
            # Identical image bytes read more than once: [{sha256, labels, paths}]. Groups with two or more labels
            # were quarantined (they are in the skipped list); one-label groups were kept (possible split leakage).
            "duplicates": list(duplicates),
            # Splits a pre-split tree lacked, carved out of train/ by the hash of source_path:
            # {split: {"from": "train", "fraction": share of train/'s files}}; {} when every split was given.
            "carved": dict(carved or {}),
        }
        max_bad = float(settings["max_bad_fraction"])
        failing = num_examples == 0 or bad_fraction > max_bad
        report_mod.write_json(os.path.join(artifact.uri, report_mod.REPORT_FILE), rep)
        skipped_file = os.path.join(artifact.uri, report_mod.SKIPPED_FILE)
        report_mod.write_json(skipped_file, skipped)
        if failing and skipped:
            # TFX deletes a failed execution's output directories: keep the list where the user can read it,
            # beside the component's artifacts (<pipeline_root>/<component>/skipped_files/<execution>.json).
            artifact_dir = artifact.uri.rstrip("/")
            kept_dir = os.path.join(os.path.dirname(os.path.dirname(artifact_dir)), "skipped_files")
            _makedirs(kept_dir)
            skipped_file = os.path.join(kept_dir, f"{os.path.basename(artifact_dir)}.json")
            report_mod.write_json(skipped_file, skipped)
        artifact.set_string_custom_property(report_mod.PROP_CLASSES, json.dumps(classes))
        artifact.set_string_custom_property(report_mod.PROP_COUNTS, json.dumps(counts, sort_keys=True))
        artifact.set_int_custom_property(report_mod.PROP_NUM_EXAMPLES, num_examples)
        artifact.set_int_custom_property(report_mod.PROP_NUM_SKIPPED, len(skipped))
        artifact.set_string_custom_property(report_mod.PROP_CARVED, json.dumps(rep["carved"], sort_keys=True))

        for b in skipped[:_MAX_LOGGED]:
            logging.warning("Skipped %s: %s", b["path"], b["reason"])
        for g in [g for g in duplicates if len(g["labels"]) == 1][:_MAX_LOGGED]:
            logging.warning(
                "The same image is in %d files (kept; copies may land in different splits): %s",
                len(g["paths"]),
                ", ".join(g["paths"][:5]),
            )
        for name, c in rep["carved"].items():
            logging.info(
                "ExampleGen: the data has no %s/ folder: %s is %.0f%% of train/'s files, carved by a stable hash of "
                "source_path (data.%s_fraction)%s",
                name,
                name,
                100 * c["fraction"],
                name,
                "" if "test" in rep["carved"] else "; test/ is used as given",
            )
        if len(skipped) > _MAX_LOGGED:
            logging.warning(
                "... and %d more skipped files, all listed in %s", len(skipped) - _MAX_LOGGED, skipped_file
            )
        per_split = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
        logging.info(
            "ExampleGen: %d examples (%s), %d classes, %d files skipped (listed in %s)",
            num_examples,
            per_split,
            len(classes),
            len(skipped),
            skipped_file,
        )

        empty = _empty_class_folders(settings["form"], input_base, span, classes) if failing else []
        empty_text = (
            f" Class folders without any usable image: {', '.join(empty)} (add images or remove the folders)."
            if empty
            else ""
        )
        if num_examples == 0:
            raise NoImagesFoundError(
                f"no usable image found in {data_path}"
                + (
                    f" ({len(skipped)} files skipped, listed in {skipped_file}; first: {_first_reasons(skipped)})"
                    if skipped
                    else ""
                )
                + f".{empty_text} {layout._LAYOUT_HELP}"  # noqa: SLF001
            )
        if bad_fraction > max_bad:
            raise TooManyBadFilesError(
                f"{len(skipped)} of {num_files} input files ({bad_fraction:.1%}) are not usable images, more than "
                f"data.max_bad_fraction={max_bad:g} ({max_bad:.1%}). First ones: {_first_reasons(skipped)}. "
                f"All of them are listed in {skipped_file}. Fix or remove these files, or raise "
                "data.max_bad_fraction to train on the rest." + empty_text
            )
        return rep


def _carved_summary(carve: list[tuple[str, int]]) -> dict:
    total = sum(b for _, b in carve)
    return {
        name: {"from": features.TRAIN_SPLIT, "fraction": round(b / total, 6)}
        for name, b in carve
        if name != features.TRAIN_SPLIT
    }


def _empty_class_folders(form: str, input_base: str, span, classes: list[str]) -> list[str]:
    try:
        found = layout.class_folders(form, input_base, int(span) if span is not None else None)
    except Exception:  # noqa: BLE001 - only a better message; the stop itself does not depend on it
        return []
    return sorted((found or set()) - set(classes))


def _first_reasons(skipped: list[dict], n: int = 10) -> str:
    text = "; ".join(f"{b['path']}: {b['reason']}" for b in skipped[:n])
    return text + (f"; ... ({len(skipped) - n} more)" if len(skipped) > n else "")


def _makedirs(path: str) -> None:
    from tfx.dsl.io import fileio

    fileio.makedirs(path)


def _rmtree(path: str) -> None:
    from tfx.dsl.io import fileio

    if fileio.exists(path):
        fileio.rmtree(path)
