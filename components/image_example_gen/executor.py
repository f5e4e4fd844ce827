"""Beam executor of the image ExampleGen: image files (or TFRecords) -> tf.Examples in train / val / test.

One Beam pipeline per run: list the inputs (here, in the executor process: cheap, and robust to odd names), read
and check every image in parallel (:func:`files.check_image`), split by a stable hash of ``source_path`` (TFX's own
partition function, so the split of a file never changes when others are added), write the splits with TFX's
``WriteSplit`` and, in the same pipeline, count examples per split and class and collect the skipped files.
After the pipeline: ``data_report.json`` + ``skipped_files.json`` in the artifact, custom properties, a log line
per skipped file, and the run stops (:class:`TooManyBadFilesError`) above ``data.max_bad_fraction``.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import csv  # noqa: E402, I001
import io
import json
import os
import posixpath
from typing import Any

import apache_beam as beam  # noqa: E402
from absl import logging  # noqa: E402
from google.protobuf import json_format, struct_pb2  # noqa: E402
from tfx.components.example_gen import base_example_gen_executor, utils, write_split  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402
from tfx.types import artifact_utils, standard_component_specs  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from graft.components import features  # noqa: E402
from graft.components.data_errors import DataValidationError, NoImagesFoundError, TooManyBadFilesError  # noqa: E402
from graft.components.image_example_gen import files, layout  # noqa: E402
from graft.components.image_example_gen import report as report_mod  # noqa: E402

# Feature names accepted in user TFRecords, first = Graft's own.
TFRECORD_IMAGE_KEYS = (features.IMAGE_KEY, "image/encoded")
TFRECORD_LABEL_KEYS = (features.LABEL_KEY, "image/class/text", "image/class/label")
TFRECORD_PATH_KEYS = (features.PATH_KEY, "image/filename")

_WORK_DIR = "_graft_work"
_MAX_LOGGED = 200


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


# ---- listing (runs in the executor process) ---------------------------------------------------------------------
def _bad(rel: str, reason: str) -> dict[str, str]:
    return {"path": files.display(rel), "reason": reason}


def folder_candidates(input_base: str, pattern: str) -> tuple[list[files.Candidate], list[dict], list[str]]:
    """Class-folder pattern ('[span-N/][split/]*/*') -> (candidates, bad, ignored folders)."""
    data_root = layout.data_root_of(pattern)
    split_root = layout.split_root_and_class_depth(pattern)
    base_for_rel = files.join(input_base, data_root)
    candidates, bad, ignored = [], [], []
    for path in files.glob_pattern(input_base, pattern):
        rel_split = _relative(path, files.join(input_base, split_root))
        cls, _, name = rel_split.partition("/")
        rel = _relative(path, base_for_rel)
        if files.is_ignored_name(cls) or files.is_ignored_name(name):
            continue
        problem = files.stat_problem(path)
        if problem == "is a directory":
            ignored.append(files.display(rel))
            continue
        problem = problem or files.class_name_problem(cls)
        candidates.append(files.Candidate(path=path, rel=rel, label=cls, problem=problem or ""))
    good = [c for c in candidates if not c.problem]
    bad = [_bad(c.rel, c.problem) for c in candidates if c.problem]
    return good, bad, ignored


def _relative(path: str, base: str) -> str:
    if files.is_remote(path):
        prefix = base.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path
    return os.path.relpath(path, base).replace(os.sep, "/")


def csv_candidates(input_base: str, pattern: str) -> tuple[list[files.Candidate], list[dict]]:
    """A ``path,label`` manifest -> (candidates, bad rows). Paths are relative to the CSV's folder."""
    csv_path = files.join(input_base, pattern)
    csv_dir = posixpath.dirname(csv_path) if files.is_remote(csv_path) else os.path.dirname(csv_path)
    csv_name = files.display(pattern)
    try:
        raw = files.read_bytes(csv_path)
    except FileNotFoundError:
        raise NoImagesFoundError(f"the CSV manifest {files.display(csv_path)} does not exist") from None
    except OSError as e:
        raise DataValidationError(f"cannot read the CSV manifest {files.display(csv_path)}: {e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataValidationError(
            f"the CSV manifest {files.display(csv_path)} is not UTF-8 text ({e}): save it as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    candidates: list[files.Candidate] = []
    bad: list[dict] = []
    seen: dict[str, int] = {}
    first = True
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if first:
            first = False
            if [c.strip().lower() for c in row] == ["path", "label"]:
                continue
        where = f"{csv_name}:{line}"
        if len(row) != 2:
            bad.append(_bad(where, f"expected 2 columns 'path,label', got {len(row)}: {row!r}"))
            continue
        rel, label = row[0].strip(), row[1].strip()
        if not rel:
            bad.append(_bad(where, "empty path"))
            continue
        rel = rel.replace("\\", "/")
        absolute = files.is_remote(rel) or os.path.isabs(rel)
        full = rel if absolute else files.join(csv_dir, rel)
        if not absolute:
            rel = posixpath.normpath(rel)
        key = posixpath.normpath(full) if not files.is_remote(full) else full
        if key in seen:
            bad.append(_bad(rel, f"listed again in line {line} of {csv_name} (first in line {seen[key]})"))
            continue
        seen[key] = line
        problem = (
            f"empty label in line {line} of {csv_name}" if not label else files.class_name_problem(label)
        ) or files.stat_problem(full)
        if problem:
            bad.append(_bad(rel, problem))
            continue
        candidates.append(files.Candidate(path=full, rel=rel, label=label))
    return candidates, bad


# ---- Beam DoFns ---------------------------------------------------------------------------------------------------
def make_example(image: bytes, label: str, source_path: bytes):
    import tensorflow as tf

    def _b(v: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE_KEY: _b(image),
                features.LABEL_KEY: _b(label.encode("utf-8")),
                features.PATH_KEY: _b(source_path),
            }
        )
    )


class ReadImageFn(beam.DoFn):
    """(path bytes, relative path bytes, label) -> tf.Example, or ('bad' output) {path, reason}."""

    def __init__(self, max_pixels: int):
        self._max_pixels = max_pixels
        self._read = beam.metrics.Metrics.counter("graft_example_gen", "images_read")
        self._skipped = beam.metrics.Metrics.counter("graft_example_gen", "images_skipped")

    def process(self, item: tuple[bytes, bytes, str]):
        # Plain tuples use Beam's fast coders (no pickled class per element); names travel as bytes because a
        # non-UTF-8 file name (a surrogate-escaped str) cannot go through Beam's UTF-8 str coder.
        path, rel, label = (
            item[0].decode("utf-8", "surrogateescape"),
            item[1].decode("utf-8", "surrogateescape"),
            item[2],
        )
        data, problem = files.read_file_checked(path)
        if problem is None:
            problem = files.check_image(data, self._max_pixels)
        if problem:
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput("bad", _bad(rel, problem))
            return
        self._read.inc()
        yield make_example(data, label, files.to_bytes(rel))


def _first(feats, keys) -> tuple[str | None, Any]:
    for k in keys:
        if k in feats:
            f = feats[k]
            if f.bytes_list.value:
                return k, f.bytes_list.value[0]
            if f.int64_list.value:
                return k, str(f.int64_list.value[0]).encode()
            return k, None
    return None, None


def _compression(path: str) -> str:
    lower = path.lower()
    return (
        "GZIP"
        if lower.endswith(".gz") or lower.endswith(".gzip")
        else "ZLIB"
        if lower.endswith(".zlib")
        else ""
    )


class ReadTFRecordFileFn(beam.DoFn):
    """One TFRecord file -> tf.Examples, each checked like an image file; corrupt files or records -> 'bad'."""

    def __init__(self, max_pixels: int, base: str):
        self._max_pixels = max_pixels
        self._base = base

    def process(self, path_bytes: bytes):
        import tensorflow as tf

        path = path_bytes.decode("utf-8", "surrogateescape")  # bytes through Beam: see ReadImageFn
        rel = _relative(path, self._base)
        problem = files.stat_problem(path)
        if problem:
            yield beam.pvalue.TaggedOutput("bad", _bad(rel, problem))
            return
        n = 0
        try:
            for record in tf.data.TFRecordDataset(path_bytes, compression_type=_compression(path)):
                n += 1
                yield from self._record(rel, n, record.numpy())
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.OpError) as e:
            msg = str(getattr(e, "message", e)).splitlines()[0]
            yield beam.pvalue.TaggedOutput(
                "bad", _bad(rel, f"corrupt TFRecord file after {n} good records: {msg}; the rest is skipped")
            )

    def _record(self, rel: str, n: int, record: bytes):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        where = f"{rel}#{n}"
        try:
            ex = tf.train.Example.FromString(record)
        except DecodeError:
            yield beam.pvalue.TaggedOutput("bad", _bad(where, "the record is not a serialized tf.Example"))
            return
        feats = ex.features.feature
        _, image = _first(feats, TFRECORD_IMAGE_KEYS)
        _, label = _first(feats, TFRECORD_LABEL_KEYS)
        _, source = _first(feats, TFRECORD_PATH_KEYS)
        if source:
            where = source.decode("utf-8", "backslashreplace")
        problem = None
        if image is None:
            problem = f"no image: the record has no bytes feature {' / '.join(TFRECORD_IMAGE_KEYS)}"
        elif label is None:
            problem = f"no label: the record has no feature {' / '.join(TFRECORD_LABEL_KEYS)}"
        else:
            try:
                label = label.decode("utf-8")
            except UnicodeDecodeError:
                problem = "the label is not valid UTF-8"
            problem = problem or files.class_name_problem(label) or files.check_image(image, self._max_pixels)
        if problem:
            yield beam.pvalue.TaggedOutput("bad", _bad(where, problem))
            return
        yield make_example(image, label, source or b"sha256:" + files.sha256_hex(image).encode())


def _label_of(example) -> str:
    return example.features.feature[features.LABEL_KEY].bytes_list.value[0].decode("utf-8")


# ---- the same picture twice ---------------------------------------------------------------------------------------
def _content_key(example) -> tuple[str, tuple[bytes, str]]:
    feats = example.features.feature
    image = feats[features.IMAGE_KEY].bytes_list.value[0]
    return files.sha256_hex(image), (feats[features.PATH_KEY].bytes_list.value[0], _label_of(example))


def _duplicate_group(item):
    """(sha256, [(path, label), ...]) -> one report entry when the same bytes were read more than once."""
    sha, copies = item
    copies = sorted(set(copies))
    if len(copies) > 1:
        yield {
            "sha256": sha,
            "labels": sorted({label for _, label in copies}),
            "paths": [files.display(p) for p, _ in copies],
            "_copies": copies,
        }


def _conflict_reasons(group: dict):
    """A group of identical files under more than one label: every copy is quarantined, with the others named."""
    if len(group["labels"]) < 2:
        return
    copies = group["_copies"]
    for path, label in copies:
        others = [f"'{files.display(p)}' (label '{lab}')" for p, lab in copies if p != path][:3]
        more = len(copies) - 1 - len(others)
        yield (
            path,
            f"the same image (sha256 {group['sha256'][:12]}) is also {', '.join(others)}"
            + (f" and {more} more" if more > 0 else "")
            + f", but here it is labelled '{label}': one picture under {len(group['labels'])} labels is quarantined "
            "(every copy). Keep it under the right label only",
        )


def _public_group(group: dict) -> dict:
    return {k: v for k, v in group.items() if not k.startswith("_")}


def quarantine_conflicting_duplicates(named: dict):
    """{name: examples} -> ({name: examples without conflicting duplicates}, bad entries, duplicate groups).

    Identical image bytes under two or more labels are label noise that no threshold can see: every copy goes to
    the skipped list (counted against data.max_bad_fraction). Identical bytes under one label are kept and only
    reported (data_report.json 'duplicates', and a warning): they may sit in different splits.
    """
    groups = (
        [pcoll | f"ContentKey[{n}]" >> beam.Map(_content_key) for n, pcoll in named.items()]
        | "AllContentKeys" >> beam.Flatten()
        | "GroupByContent" >> beam.GroupByKey()
        | "DuplicateGroups" >> beam.FlatMap(_duplicate_group)
    )
    conflicts = groups | "ConflictReasons" >> beam.FlatMap(_conflict_reasons)
    drop = beam.pvalue.AsDict(conflicts)
    kept = {
        n: pcoll
        | f"DropConflicts[{n}]"
        >> beam.Filter(
            lambda ex, d: ex.features.feature[features.PATH_KEY].bytes_list.value[0] not in d, d=drop
        )
        for n, pcoll in named.items()
    }
    bad = conflicts | "ConflictsToBad" >> beam.Map(
        lambda kv: _bad(kv[0].decode("utf-8", "surrogateescape"), kv[1])
    )
    return kept, bad, groups | "PublicGroups" >> beam.Map(_public_group)


class _WriteJson(beam.DoFn):
    def __init__(self, path: str):
        self._path = path

    def process(self, value):
        report_mod.write_json(self._path, value)


@beam.ptransform_fn
def _ReadSplit(pipeline, settings: dict, input_base: str, pattern: str, split: str):  # noqa: N802
    """(examples, bad) PCollections for one input pattern; listing problems are added to ``bad``."""
    form = settings["form"]
    max_pixels = int(settings["max_image_pixels"])
    ignored: list[str] = []
    if form == "tfrecord":
        paths = files.glob_pattern(input_base, pattern)
        base = files.join(input_base, layout.data_root_of(pattern))
        outputs = (
            pipeline
            | "ListRecords" >> beam.Create([files.to_bytes(p) for p in paths])
            | "ReshuffleFiles" >> beam.Reshuffle()
            | "ReadRecords"
            >> beam.ParDo(ReadTFRecordFileFn(max_pixels, base)).with_outputs("bad", main="examples")
        )
        listed_bad: list[dict] = []
    else:
        if form == "csv":
            candidates, listed_bad = csv_candidates(input_base, pattern)
        else:
            candidates, listed_bad, ignored = folder_candidates(input_base, pattern)
        outputs = (
            pipeline
            | "ListImages"
            >> beam.Create([(files.to_bytes(c.path), files.to_bytes(c.rel), c.label) for c in candidates])
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadImages" >> beam.ParDo(ReadImageFn(max_pixels)).with_outputs("bad", main="examples")
        )
    if ignored:
        logging.warning(
            "Ignored %d folder(s) inside class folders of split %s (images must sit directly in a class folder): %s",
            len(ignored),
            split,
            ", ".join(ignored[:10]),
        )
    bad = (outputs.bad, pipeline | "ListingProblems" >> beam.Create(listed_bad)) | "AllBad" >> beam.Flatten()
    return outputs.examples, bad


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """The image ExampleGen's executor (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        """For TFX's generic ``GenerateExamplesByBeam``: the good examples of one split pattern."""

        @beam.ptransform_fn
        def _ImagesToExample(pipeline, exec_properties, split_pattern):  # noqa: N802
            settings = read_settings(exec_properties)
            examples, _ = pipeline | "Read" >> _ReadSplit(  # pylint: disable=no-value-for-parameter
                settings, exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern, "all"
            )
            return examples

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

        examples_list = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples_list)
        split_names = utils.generate_output_split_names(input_config, output_config)
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        work = os.path.join(artifact.uri, _WORK_DIR)
        _makedirs(work)
        counts_path = os.path.join(work, "counts.json")
        bad_path = os.path.join(work, "bad.json")
        duplicates_path = os.path.join(work, "duplicates.json")
        logging.info(
            "Reading %s data from %s with patterns %s",
            settings["form"],
            input_base,
            list(input_config.splits),
        )

        pipeline = self._make_beam_pipeline()
        splits: dict[str, Any] = {}
        bads = []
        if output_config.split_config.splits:
            if len(input_config.splits) != 1:
                raise ValueError("output splits need exactly one input split")
            examples, bad = pipeline | "Read" >> _ReadSplit(  # pylint: disable=no-value-for-parameter
                settings, input_base, input_config.splits[0].pattern, "all"
            )
            kept, dup_bad, dup_groups = quarantine_conflicting_duplicates({"all": examples})
            splits = hash_split(kept["all"], output_config, split_names)
            bads.append(bad)
        else:
            for s in input_config.splits:
                examples, bad = pipeline | f"Read[{s.name}]" >> _ReadSplit(  # pylint: disable=no-value-for-parameter
                    settings, input_base, s.pattern, s.name
                )
                splits[s.name] = examples
                bads.append(bad)
            splits, dup_bad, dup_groups = quarantine_conflicting_duplicates(splits)
        bads.append(dup_bad)
        _ = (
            dup_groups
            | "DuplicatesToList" >> beam.combiners.ToList()
            | "WriteDuplicates" >> beam.ParDo(_WriteJson(duplicates_path))
        )

        output_file_format = write_splits_and_counts(
            splits, bads, examples_list, exec_properties, counts_path, bad_path, _label_of
        )
        pipeline.run().wait_until_finish()

        counts_raw = report_mod._read_json(counts_path)  # noqa: SLF001
        skipped = sorted(report_mod._read_json(bad_path), key=lambda b: (b["path"], b["reason"]))  # noqa: SLF001
        duplicates = sorted(report_mod._read_json(duplicates_path), key=lambda g: g["paths"])  # noqa: SLF001
        _rmtree(work)
        self._finish(artifact, settings, input_base, span, split_names, counts_raw, skipped, duplicates)

        output_payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if output_payload_format:
            from tfx.components.util import examples_utils

            examples_utils.set_payload_format(artifact, output_payload_format)
        if output_file_format:
            from tfx.components.util import examples_utils

            examples_utils.set_file_format(artifact, write_split.to_file_format_str(output_file_format))

    @staticmethod
    def _finish(
        artifact, settings, input_base, span, split_names, counts_raw, skipped, duplicates=()
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

        for b in skipped[:_MAX_LOGGED]:
            logging.warning("Skipped %s: %s", b["path"], b["reason"])
        for g in [g for g in duplicates if len(g["labels"]) == 1][:_MAX_LOGGED]:
            logging.warning(
                "The same image is in %d files (kept; copies may land in different splits): %s",
                len(g["paths"]),
                ", ".join(g["paths"][:5]),
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

        if num_examples == 0:
            raise NoImagesFoundError(
                f"no usable image found in {data_path}"
                + (
                    f" ({len(skipped)} files skipped, listed in {skipped_file}; first: {_first_reasons(skipped)})"
                    if skipped
                    else ""
                )
                + f". {layout._LAYOUT_HELP}"  # noqa: SLF001
            )
        if bad_fraction > max_bad:
            raise TooManyBadFilesError(
                f"{len(skipped)} of {num_files} input files ({bad_fraction:.1%}) are not usable images, more than "
                f"data.max_bad_fraction={max_bad:g} ({max_bad:.1%}). First ones: {_first_reasons(skipped)}. "
                f"All of them are listed in {skipped_file}. Fix or remove these files, or raise "
                "data.max_bad_fraction to train on the rest."
            )
        return rep


def hash_split(examples, output_config, split_names) -> dict:
    """TFX's own hash partition (``partition_feature_name`` of the split config) into the output splits."""
    buckets, total = [], 0
    for s in output_config.split_config.splits:
        total += s.hash_buckets
        buckets.append(total)
    parts = examples | "SplitByHash" >> beam.Partition(
        base_example_gen_executor._PartitionFn,  # noqa: SLF001 - TFX's own hash split, kept identical
        len(buckets),
        buckets,
        output_config.split_config,
    )
    return {name: parts[i] for i, name in enumerate(split_names)}


def write_splits_and_counts(splits, bads, examples_list, exec_properties, counts_path, bad_path, label_of):
    """Write each split with TFX's WriteSplit; count examples per (split, label) and collect the bad inputs as
    JSON files, in the same pipeline. Returns the output file format (shared with the text ExampleGen)."""
    output_file_format = exec_properties.get(
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FILE_FORMAT_UNSPECIFIED
    )
    keyed = []
    for name, pcoll in splits.items():
        _ = pcoll | f"WriteSplit[{name}]" >> write_split.WriteSplit(  # pylint: disable=no-value-for-parameter
            artifact_utils.get_split_uri(examples_list, name), output_file_format, exec_properties
        )
        keyed.append(pcoll | f"Key[{name}]" >> beam.Map(lambda ex, n=name: (n, label_of(ex))))
    _ = (
        keyed
        | "AllKeys" >> beam.Flatten()
        | "CountPerSplitClass" >> beam.combiners.Count.PerElement()
        | "CountsToList" >> beam.combiners.ToList()
        | "WriteCounts" >> beam.ParDo(_WriteJson(counts_path))
    )
    _ = (
        bads
        | "FlattenBad" >> beam.Flatten()
        | "BadToList" >> beam.combiners.ToList()
        | "WriteBad" >> beam.ParDo(_WriteJson(bad_path))
    )
    return output_file_format


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
