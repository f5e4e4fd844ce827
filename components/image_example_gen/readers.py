"""The image ExampleGen's Beam DoFns: read each input once to check and hash it, once more to write it.

Why two passes over the files: the same picture under two labels must be quarantined (every copy), which needs
every file's content hash before the first example may be written. Grouping the examples themselves on their
hash (as Graft did) made Beam hold every image's bytes in memory until the last file was read -- the in-memory
DirectRunner materialises a PCollection whose consumer waits on a side input, about 5.5 bytes of memory per byte
of input. So pass 1 (:class:`CheckImageFn`, :class:`CheckTFRecordFileFn`) reads and checks every file and emits
only ``(sha256, (source_path, label))`` keys and the problems; pass 2 (:class:`ReadImageFn`,
:class:`ReadTFRecordFileFn`) reads again, drops what pass 1 refused or the duplicate check quarantined (a small
side input of keys), and streams tf.Examples to the writer. The second read is sequential I/O of files the page
cache usually still holds; nothing in either pass keeps image bytes once an element is done.

Names travel as bytes (a non-UTF-8 file name, a surrogate-escaped str, cannot go through Beam's UTF-8 str coder),
in plain tuples (Beam's fast coders, no pickled class per element).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from graft.components import features
from graft.components.image_example_gen import files
from graft.components.image_example_gen.listing import bad_entry, relative

# Feature names accepted in user TFRecords, first = Graft's own.
TFRECORD_IMAGE_KEYS = (features.IMAGE_KEY, "image/encoded")
TFRECORD_LABEL_KEYS = (features.LABEL_KEY, "image/class/text", "image/class/label")
TFRECORD_PATH_KEYS = (features.PATH_KEY, "image/filename")

BAD = "bad"  # tagged output: {path, reason} entries for skipped_files.json
DROP = "drop"  # tagged output of pass 1: source_path keys pass 2 must not write


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


def label_of(example) -> str:
    return example.features.feature[features.LABEL_KEY].bytes_list.value[0].decode("utf-8")


def source_of(example) -> bytes:
    return example.features.feature[features.PATH_KEY].bytes_list.value[0]


def _names(item: tuple[bytes, bytes, str]) -> tuple[str, str]:
    return item[0].decode("utf-8", "surrogateescape"), item[1].decode("utf-8", "surrogateescape")


class CheckImageFn(beam.DoFn):
    """Pass 1: (path bytes, relative path bytes, label) -> (sha256, (relative path bytes, label)); a file that is
    not a usable image -> ``bad`` {path, reason} and ``drop`` its key."""

    def __init__(self, max_pixels: int):
        self._max_pixels = max_pixels
        self._read = beam.metrics.Metrics.counter("graft_example_gen", "images_read")
        self._skipped = beam.metrics.Metrics.counter("graft_example_gen", "images_skipped")

    def process(self, item: tuple[bytes, bytes, str]):
        path, rel = _names(item)
        data, problem = files.read_file_checked(path)
        if problem is None:
            problem = files.check_image(data, self._max_pixels)
        if problem:
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput(BAD, bad_entry(rel, problem))
            yield beam.pvalue.TaggedOutput(DROP, item[1])
            return
        self._read.inc()
        yield files.sha256_hex(data), (item[1], item[2])


class ReadImageFn(beam.DoFn):
    """Pass 2: (path bytes, relative path bytes, label) -> tf.Example, unless its key is in ``drop``."""

    def process(self, item: tuple[bytes, bytes, str], drop):
        if item[1] in drop:
            return
        path, rel = _names(item)
        data, problem = files.read_file_checked(path)
        if problem:  # it was readable a moment ago (pass 1): deleted or made unreadable during the run
            yield beam.pvalue.TaggedOutput(BAD, bad_entry(rel, f"{problem} (changed while the run read it)"))
            return
        yield make_example(data, item[2], item[1])


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


class _TFRecordFileFn(beam.DoFn):
    """One TFRecord file -> its records, each checked like an image file; corrupt files or records -> ``bad``."""

    def __init__(self, max_pixels: int, base: str):
        self._max_pixels = max_pixels
        self._base = base

    def records(self, path_bytes: bytes):
        """Yields ('bad', entry) or ('ok', (image, label, source_path)) per record."""
        import tensorflow as tf

        path = path_bytes.decode("utf-8", "surrogateescape")
        rel = relative(path, self._base)
        problem = files.stat_problem(path)
        if problem:
            yield BAD, bad_entry(rel, problem)
            return
        n = 0
        try:
            for record in tf.data.TFRecordDataset(path_bytes, compression_type=_compression(path)):
                n += 1
                yield self._record(rel, n, record.numpy())
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.OpError) as e:
            msg = str(getattr(e, "message", e)).splitlines()[0]
            yield (
                BAD,
                bad_entry(rel, f"corrupt TFRecord file after {n} good records: {msg}; the rest is skipped"),
            )

    def _record(self, rel: str, n: int, record: bytes):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        where = f"{rel}#{n}"
        try:
            ex = tf.train.Example.FromString(record)
        except DecodeError:
            return BAD, bad_entry(where, "the record is not a serialized tf.Example")
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
            return BAD, bad_entry(where, problem)
        return "ok", (image, label, source or b"sha256:" + files.sha256_hex(image).encode())


class CheckTFRecordFileFn(_TFRecordFileFn):
    """Pass 1 over one TFRecord file: (sha256, (source_path, label)) per good record; problems -> ``bad``."""

    def process(self, path_bytes: bytes):
        for kind, value in self.records(path_bytes):
            if kind == BAD:
                yield beam.pvalue.TaggedOutput(BAD, value)
            else:
                image, label, source = value
                yield files.sha256_hex(image), (source, label)


class ReadTFRecordFileFn(_TFRecordFileFn):
    """Pass 2 over one TFRecord file: a tf.Example per good record whose source_path is not in ``drop`` (the
    checks run again, so a refused record is left out; pass 1 already reported it)."""

    def process(self, path_bytes: bytes, drop):
        for kind, value in self.records(path_bytes):
            if kind != BAD and value[2] not in drop:
                yield make_example(*value)
