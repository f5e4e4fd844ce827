"""Which task a run is (``task``: image | text), decided once, before anything is built or resolved.

Why here: the task picks the ExampleGen, the schema, the Transform branch, the model and the signatures, so every
caller (``graft run``, the Kubeflow compile, the report) must agree on it; one function decides. ``task: auto``
looks at two things that cost nothing to inspect:

* the backbone handle: a text encoder (the offline ``minilm_l6``, a TF Hub BERT-family URL, a local directory
  holding a text module Graft built) says text; anything else says image;
* the data (a local folder or file only; remote data is not listed here): ``.tsv`` / ``.csv`` manifests and
  ``.txt`` files say text, image files say image. A ``.csv`` alone says nothing (the image ExampleGen reads
  ``path,label`` manifests too).

When the backbone and the data disagree, or an explicit ``task`` contradicts the backbone, the run stops with one
sentence naming both and the fix (a :class:`ConfigError` naming the key). No TensorFlow is imported here.
"""

from __future__ import annotations

import os

from graft.errors import ConfigError

IMAGE, TEXT = "image", "text"
_TEXT_SUFFIXES = (".tsv", ".txt")
_SCAN_LIMIT = 2000  # entries looked at, at most (the data may be large; a sample decides)


def backbone_is_text(handle: str) -> bool | None:
    """True for a text encoder handle, False for an image one, None when it cannot be told without reading a remote
    module (a gs:// or URL handle outside TF Hub's known text encoders: ``task`` then decides). No module is loaded:
    names, URL patterns, a local graft_backbone.json."""
    from graft.components.backbones import resolve as _resolve
    from graft.components.backbones import text_resolve

    if not handle:
        return None
    if text_resolve.looks_like_text(handle):
        return True
    kind = _resolve.handle_kind(handle)
    if kind == "local":
        return _resolve._is_text_module_dir(handle)  # noqa: SLF001
    return False if kind == "offline" else None


def data_kind(path: str) -> str | None:
    """'text', 'image' or None (remote, missing, or nothing telling) from the names under a local ``path``."""
    from graft.components.image_example_gen.files import IMAGE_SUFFIXES

    if not path or "://" in path or any(c in path for c in "*?["):
        return None
    path = os.path.expanduser(path)
    if os.path.isfile(path):
        low = path.lower()
        return TEXT if low.endswith(_TEXT_SUFFIXES) else (IMAGE if low.endswith(IMAGE_SUFFIXES) else None)
    if not os.path.isdir(path):
        return None
    text = image = seen = 0
    for _, dirs, names in os.walk(path):
        dirs.sort()
        for n in names:
            low = n.lower()
            text += low.endswith(_TEXT_SUFFIXES)
            image += low.endswith(IMAGE_SUFFIXES)
            seen += 1
        if seen >= _SCAN_LIMIT or (text + image) >= 50:
            break
    if text > image:
        return TEXT
    if image > text:
        return IMAGE
    return None


def detect_task(cfg) -> str:
    """``cfg.task`` resolved to 'image' or 'text' (see the module docstring); raises ConfigError on a contradiction."""
    handle = cfg.backbone.handle
    is_text = backbone_is_text(handle)
    found = data_kind(cfg.data.path)
    if cfg.task != "auto":
        if is_text is not None and is_text != (cfg.task == TEXT):
            raise ConfigError(
                f"config key 'task': {cfg.task!r}, but backbone.handle {handle!r} is "
                f"{'a text encoder' if is_text else 'an image module'}: use a {cfg.task} backbone "
                f"({'e.g. minilm_l6' if cfg.task == TEXT else 'e.g. mobilenet_v1_imagenet'}), or set task: "
                f"{TEXT if is_text else IMAGE}"
            )
        task = cfg.task
    elif is_text is not None:
        task = TEXT if is_text else IMAGE
    else:
        task = found or IMAGE
    if found is not None and found != task:
        what = "text files (.tsv / .csv / .txt)" if found == TEXT else "image files"
        fix = (
            "a text backbone (e.g. minilm_l6)"
            if found == TEXT
            else "an image backbone (e.g. mobilenet_v1_imagenet)"
        )
        raise ConfigError(
            f"config key 'task': data.path {cfg.data.path} holds {what} but backbone.handle {handle!r} is "
            f"{'a text encoder' if task == TEXT else 'an image module'}: use {fix}, or point --data at {task} data"
        )
    return task


def resolve_backbone_for(cfg, task: str | None = None):
    """The backbone's info for this run: an image BackboneInfo, or a TextBackboneInfo at ``backbone.seq_length``."""
    from graft.components.backbones import resolve_backbone

    task = task or detect_task(cfg)
    if task == TEXT:
        return resolve_backbone(cfg.backbone.handle, seq_length=cfg.backbone.seq_length)
    return resolve_backbone(cfg.backbone.handle, cfg.backbone.input_size)


def info_task(backbone_info) -> str:
    """'text' or 'image' for a BackboneInfo / TextBackboneInfo / their dict."""
    d = backbone_info.to_dict() if hasattr(backbone_info, "to_dict") else dict(backbone_info)
    return TEXT if d.get("task") == TEXT else IMAGE
