"""Listing and checking input files, robustly: the part of the image ExampleGen that touches the user's disk.

Local paths are listed with the ``os`` module (``tf.io.gfile`` raises ``UnicodeDecodeError`` on a non-UTF-8 file
name, and TFX's own ``fileio.stat`` raises on a symlink loop or a broken link). Remote paths (``gs://`` ...) go
through ``tf.io.gfile``: object stores have neither symlinks nor non-UTF-8 names.

Every problem with one file becomes a *reason* string attached to that file (it is skipped, counted and listed);
nothing here raises for a single bad file. Hidden files and OS junk are ignored silently.

Importing this module is cheap (no TensorFlow); :func:`check_image` imports TensorFlow on first use.
"""

from __future__ import annotations

import errno
import glob as _glob
import hashlib
import io
import os
import re
import stat as _stat
import warnings
from dataclasses import dataclass

# OS / tool junk that is never data; hidden names (leading '.') are ignored too.
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r", "__macosx", "$recycle.bin"})
# Formats Transform decodes (tf.io.decode_image); PIL names them so.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif")


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(base: str, rel: str) -> str:
    if not rel:
        return base
    if is_remote(base):
        return base.rstrip("/") + "/" + rel
    return os.path.join(base, rel)


def is_ignored_name(name: str) -> bool:
    """Hidden files and OS junk: skipped without a word."""
    return not name or name.startswith(".") or name.lower() in JUNK_NAMES or name.startswith("._")


def display(path: str | bytes) -> str:
    """A printable, JSON-safe form of a (possibly non-UTF-8) path: undecodable bytes become \\xNN escapes."""
    raw = (
        path
        if isinstance(path, bytes)
        else os.fsencode(path)
        if not is_remote(path)
        else path.encode("utf-8")
    )
    return raw.decode("utf-8", "backslashreplace")


def to_bytes(path: str) -> bytes:
    """The exact bytes of a local name (a non-UTF-8 name round-trips through surrogateescape)."""
    return path.encode("utf-8", "surrogateescape")


def class_name_problem(name: str) -> str | None:
    """Why a folder name (or CSV label) cannot be a class name, or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"class name {display(name)!r} is not valid UTF-8: rename the folder (or fix the label)"
    if not name.strip():
        return "the class name is empty"
    if name != name.strip():
        return f"class name {name!r} starts or ends with white space: rename it"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"class name {name!r} contains control characters: rename it"
    # Class names become file and directory names downstream (reports, exports): no path tricks.
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"class name {name!r} is a path ('/', '\\\\', '.' or '..'): use a plain name"
    return None


# ---- listing ------------------------------------------------------------------------------------------------
def list_dir(path: str) -> list[tuple[str, bool]]:
    """(name, is_dir) of the visible entries of a directory, sorted; [] if it does not exist."""
    if is_remote(path):
        import tensorflow as tf

        if not tf.io.gfile.isdir(path):
            return []
        out = []
        for name in tf.io.gfile.listdir(path):
            is_dir = name.endswith("/")
            name = name.rstrip("/")
            if not is_ignored_name(name):
                out.append((name, is_dir or tf.io.gfile.isdir(join(path, name))))
        return sorted(out)
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        if is_ignored_name(e.name):
            continue
        try:
            is_dir = e.is_dir()  # follows symlinks; False for a loop or a broken link
        except OSError:
            is_dir = False
        out.append((e.name, is_dir))
    return sorted(out)


def glob_pattern(input_base: str, pattern: str) -> list[str]:
    """Paths matching ``input_base/pattern`` (TFX pattern semantics), sorted; hidden entries are not matched."""
    if is_remote(input_base):
        import tensorflow as tf

        return sorted(p for p in tf.io.gfile.glob(join(input_base, pattern)) if not p.endswith("/"))
    # glob.escape: a '[' in the user's base directory is a name, not a character class.
    return sorted(_glob.glob(os.path.join(_glob.escape(input_base), pattern)))


@dataclass(frozen=True)
class Candidate:
    """One input file to read: where it is, what it is called in the data, and its label."""

    path: str  # absolute (or remote) path to open
    rel: str  # path relative to the data root, as str (surrogate-escaped if the name is not UTF-8)
    label: str  # class name
    problem: str = ""  # non-empty: the file is bad for this reason (found while listing)


def stat_problem(path: str) -> str | None:
    """Why a local path cannot be read as a regular file, or None. Never raises."""
    if is_remote(path):
        return None
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if e.errno == errno.ENOENT:
            return (
                "broken symbolic link (its target does not exist)"
                if os.path.islink(path)
                else "file not found"
            )
        if e.errno == errno.EACCES:
            return "permission denied"
        return f"cannot read the file: {e.strerror or e}"
    if _stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not _stat.S_ISREG(st.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def read_file_checked(path: str) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, reason). Never raises for a bad file."""
    problem = stat_problem(path)
    if problem:
        return None, problem
    try:
        return read_bytes(path), None
    except PermissionError:
        return None, "permission denied"
    except OSError as e:
        return None, f"cannot read the file: {e.strerror or e}"
    except Exception as e:  # noqa: BLE001 - remote filesystems raise their own errors
        return None, f"cannot read the file: {type(e).__name__}: {e}"


def file_fingerprint(path: str) -> tuple[int, int]:
    """(size, mtime seconds) of a local file without following a loop; (0, 0) if it cannot be stat'ed."""
    for fn in (os.stat, os.lstat):
        try:
            st = fn(path)
            return int(st.st_size), int(st.st_mtime)
        except OSError:
            continue
    return 0, 0


# ---- checking one image -----------------------------------------------------------------------------------------
def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_image(data: bytes, max_pixels: int) -> str | None:
    """Why ``data`` is not an image Transform can decode, or None.

    In order, cheapest first: empty; PIL reads the header only (not an image / unsupported format); the pixel
    count from the header against ``max_pixels`` (all frames of a GIF), so that a decompression bomb is refused
    before anything decodes it; PIL's ``verify`` (PNG chunk CRCs, structure); and finally TensorFlow's own
    decoder, the one Transform uses (a truncated JPEG passes PIL's checks but fails there). JPEGs are decoded at
    1/8 scale (DCT scaling): the whole entropy-coded stream is still read, so truncation is still caught.
    """
    problem, fmt = check_header(data, max_pixels)
    if problem:
        return problem
    from PIL import Image

    try:
        Image.open(io.BytesIO(data)).verify()
    except Exception as e:  # noqa: BLE001 - PIL raises many types
        return f"corrupt {fmt}: {e}"
    return _tf_decode_problem(data, fmt)


def check_header(data: bytes, max_pixels: int) -> tuple[str | None, str]:
    """(problem or None, format) from the header alone: nothing is decoded here."""
    if not data:
        return "empty file (0 bytes)", ""
    from PIL import Image, UnidentifiedImageError

    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # PIL refuses images above 2x its own limit inside open(); lift that limit to ours (only ever upwards):
        # the configured data.max_image_pixels is enforced right below, before anything decodes.
        Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:  # PIL's own limit (2x its MAX_IMAGE_PIXELS) fired first
            m = re.search(r"\((\d+) pixels\)", str(e))
            pixels = f"{int(m.group(1)):,} pixels" if m else "more pixels than PIL allows"
            return _too_large(pixels, max_pixels), ""
        except UnidentifiedImageError:
            fmt = sniff_format(data)
            if fmt:
                return f"corrupt {fmt}: its header cannot be read (broken or truncated file)", fmt
            return "not an image (unrecognised file content)", ""
        except Exception as e:  # noqa: BLE001 - PIL raises many types for broken headers
            return f"corrupt image header: {e}", ""
    fmt = img.format or "unknown"
    if fmt == "MPO":  # multi-picture JPEG (many phone and camera photos): TensorFlow decodes its first image
        fmt = "JPEG"
    if fmt not in SUPPORTED_FORMATS:
        return (
            f"unsupported image format {fmt} (supported: {', '.join(SUPPORTED_FORMATS)}): convert the file",
            fmt,
        )
    width, height = img.size
    frames = 1
    if fmt == "GIF":
        try:
            frames = max(1, int(getattr(img, "n_frames", 1)))
        except Exception as e:  # noqa: BLE001
            return f"corrupt GIF: {e}", fmt
    pixels = width * height * frames
    if pixels > max_pixels:
        what = f"{width}x{height}" + (f"x{frames} frames" if frames > 1 else "")
        return _too_large(f"{what} = {pixels:,} pixels", max_pixels), fmt
    if width < 1 or height < 1:
        return f"image has no pixels ({width}x{height})", fmt
    return None, fmt


def _too_large(what: str, max_pixels: int) -> str:
    return (
        f"image too large: {what} > data.max_image_pixels={max_pixels:,}; refused without decoding "
        "(possible decompression bomb)"
    )


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)


def sniff_format(data: bytes) -> str | None:
    """The format a file's magic bytes announce (even when the rest is broken), or None."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def _tf_decode_problem(data: bytes, fmt: str) -> str | None:
    import tensorflow as tf

    try:
        if fmt == "JPEG":
            tf.io.decode_jpeg(data, channels=3, ratio=8)
        else:
            tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as e:
        msg = str(getattr(e, "message", e)).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "}}" in msg:  # '{{function_node __wrapped__DecodeJpeg_device_...}} jpeg::Uncompress failed...'
            msg = msg.split("}}", 1)[1].strip()
        hint = "truncated or corrupt" if fmt == "JPEG" else "corrupt"
        return f"{hint} {fmt} data: TensorFlow cannot decode it ({msg})"
    return None
