"""Backbones: resolve a TF Hub handle, read what the module expects, and build real modules offline.

An image backbone is a TF2 SavedModel in TF Hub's reusable format: ``__call__(images, training=False)`` on float32
``[B, H, W, 3]`` in TF Hub's image range [0, 1], returning a feature vector ``[B, F]``, with ``variables``,
``trainable_variables`` and ``regularization_losses`` attributes. A text backbone is TF Hub's BERT contract: a
preprocessing SavedModel (strings -> ``input_word_ids``, ``input_mask``, ``input_type_ids``) and an encoder
SavedModel (those -> ``pooled_output``, ``sequence_output``). Users name one by *handle*:

  ``https://tfhub.dev/...`` / ``https://www.kaggle.com/models/...``   downloaded once into the cache by tensorflow_hub
  ``gs://bucket/dir`` (or ``gs://.../module.tar.gz``)                 read in place (tarballs are cached)
  ``/local/dir``                                                       a TF2 SavedModel directory
  ``mobilenet_v1_imagenet`` / ``tiny`` / ``minilm_l6``                 built here on demand, offline

The package is split by what changes together:

  :mod:`.metadata`      names, errors, the cache, :class:`BackboneInfo` and ``graft_backbone.json`` reading
  :mod:`.resolve`       handle routing, directory checks, reading an image module's signature
  ``resolve_backbone``  (here) the one entry point: dispatches to the image or the text resolver
  :mod:`.image_builds`  the offline image modules (MobileNet V1 ImageNet, tiny)
  :mod:`.text`          text backbones: the BERT contract pair, resolving and the offline ``minilm_l6`` build

Every name that lived in the former single module ``graft.components.backbones`` is re-exported here. This
package is cheap to import (no TensorFlow at import time): the CLI lists its commands without TensorFlow.
"""

from graft.components.backbones.image_builds import (
    WeightsMissingError,
    build_tiny,
    classifier_labels,
    import_mobilenet_v1,
)
from graft.components.backbones.metadata import (
    BUILDER_VERSION,
    CACHE_ENV,
    DEFAULT_CACHE_DIR,
    METADATA_FILE,
    METADATA_FORMAT,
    MOBILENET,
    MOBILENET_SIZES,
    OFFLINE_NAMES,
    TINY,
    TINY_DEFAULT_SIZE,
    TINY_SEED,
    TINY_SIZE_RANGE,
    BackboneError,
    BackboneInfo,
    cache_dir,
    ensure_cache_env,
    offline_module_dir,
    read_module_metadata,
)
from graft.components.backbones.resolve import (
    build_offline,
    check_module_dir,
    effective_value_range,
    handle_kind,
    keras_layer,
    resolve_image_backbone,
)

__all__ = [
    "BUILDER_VERSION",
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
    "METADATA_FILE",
    "METADATA_FORMAT",
    "MOBILENET",
    "MOBILENET_SIZES",
    "OFFLINE_NAMES",
    "TINY",
    "TINY_DEFAULT_SIZE",
    "TINY_SEED",
    "TINY_SIZE_RANGE",
    "BackboneError",
    "BackboneInfo",
    "WeightsMissingError",
    "build_offline",
    "build_tiny",
    "cache_dir",
    "check_module_dir",
    "classifier_labels",
    "ensure_cache_env",
    "handle_kind",
    "import_mobilenet_v1",
    "keras_layer",
    "offline_module_dir",
    "read_module_metadata",
    "resolve_backbone",
    "resolve_image_backbone",
    "effective_value_range",
]


def resolve_backbone(
    handle: str,
    input_size: int | None = None,
    *,
    preprocess_handle: str | None = None,
    seq_length: int | None = None,
):
    """Resolve any handle to its module and metadata: an image feature vector (:func:`resolve_image_backbone`) or,
    for the offline ``minilm_l6``, a known TF Hub text encoder URL, a directory Graft built as one, or any handle
    given with ``preprocess_handle``, a text encoder pair (:class:`.text_resolve.TextBackboneInfo`).

    The dispatch lives here, above both resolvers, so neither imports the other.
    """
    from graft.components.backbones import resolve as _resolve
    from graft.components.backbones import text_resolve

    if (
        preprocess_handle
        or text_resolve.looks_like_text(handle)
        or (_resolve.handle_kind(handle) == "local" and _resolve._is_text_module_dir(handle))  # noqa: SLF001
    ):
        return text_resolve.resolve_text_backbone(handle, preprocess_handle, seq_length)
    return resolve_image_backbone(handle, input_size)
