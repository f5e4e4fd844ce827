"""Run report, run history and progress.

Fast tests draw the plots and the page from small real inputs; the slow ones run the real DAG (LocalDagRunner,
Beam, MLMD) on tiny real images through the ``graft`` CLI and check the report against MLMD and the artifacts:
a blessed run, a not-blessed one, one stopped by the data gate and one stopped by bad files.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image, ImageDraw

from graft.cli import main
from graft.pipeline import local_runner, report, runs

CLASSES = {"blue_triangle": (30, 40, 220), "green_square": (30, 200, 40), "red_circle": (220, 30, 30)}


# ---- reading the page back ------------------------------------------------------------------------------------
class Page(html.parser.HTMLParser):
    """Section ids, data-key texts and embedded images of a report."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: list[str] = []
        self.keys: dict[str, list[str]] = {}
        self.images: list[tuple[str, bytes]] = []
        self._open: list[tuple[str, str, list[str]]] = []  # (tag, key, text parts)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images.append((a.get("data-file", ""), base64.b64decode(a["src"].split(",", 1)[1])))
        if "data-key" in a:
            self._open.append((tag, a["data-key"], []))

    def handle_data(self, data):
        for _, _, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, key, parts = self._open.pop()
            self.keys.setdefault(key, []).append("".join(parts).strip())

    def key(self, name: str) -> str:
        assert name in self.keys, f"no data-key {name!r} in the report; keys: {sorted(self.keys)[:40]}"
        return self.keys[name][0]


def read_page(path: Path) -> tuple[str, Page]:
    text = Path(path).read_text(encoding="utf-8")
    return text, Page(text)


def assert_png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    Image.open(io.BytesIO(data)).verify()  # checks every chunk's CRC
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG" and img.width > 50 and img.height > 50
    return img


# ---- fast: plots, page, progress ------------------------------------------------------------------------------
def _history(p1: int, p2: int) -> dict:
    rows = []
    for i in range(p1 + p2):
        rows.append(
            {
                "epoch": i,
                "phase": 1 if i < p1 else 2,
                "loss": 1.0 / (i + 1),
                "val_loss": 1.1 / (i + 1),
                "accuracy": 0.5 + 0.05 * i,
                "val_accuracy": 0.45 + 0.05 * i,
            }
        )
    phases = [{"phase": 1, "epochs_run": p1, "best_epoch": p1 - 1, "learning_rate": 1e-3}]
    if p2:
        phases.append({"phase": 2, "epochs_run": p2, "best_epoch": p1 + p2 - 1, "learning_rate": 1e-5})
    return {"epochs": rows, "phases": phases, "selected": {"phase": 2 if p2 else 1, "epoch": p1 + p2 - 1}}


def test_training_curves_mark_the_phase_boundary():
    history = _history(4, 3)
    assert report.phase_boundary(history) == 4.5  # between epoch 4 (last of phase 1) and 5 (1-based)
    assert_png(report.plot_training_curves(history))
    single = _history(3, 0)
    assert report.phase_boundary(single) is None
    assert_png(report.plot_training_curves(single))


def test_confusion_matrix_png():
    img = assert_png(report.plot_confusion_matrix([[5, 1, 0], [0, 3, 2], [0, 0, 0]], ["a", "b", "c"]))
    assert img.width > 200


def test_sample_mosaic_puts_each_class_on_its_row():
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((20, 20, 3), np.uint8)
    blue[..., 2] = 200
    mosaic, names, row_h = report.sample_mosaic({"red": [red, red, red], "blue": [blue, blue], "none": []})
    assert names == ["red", "blue"] and row_h == 22
    assert mosaic.shape == (44, 66, 3)
    assert (mosaic[0:20, 44:64] == red).all()
    assert (mosaic[22:42, 0:20] == blue).all()
    assert (mosaic[22:42, 44:64] == 255).all()  # blue has 2 images: the third tile stays white
    big = np.full((448, 448, 3), 7, np.uint8)
    mosaic, _, row_h = report.sample_mosaic({"x": [big]})
    assert mosaic.shape[0] == report.SAMPLE_TILE_MAX + 2 and row_h == report.SAMPLE_TILE_MAX + 2
    assert_png(report.plot_samples({"red": [red] * 8, "blue": [blue] * 8}))


def test_page_escapes_file_names_and_error_text(tmp_path):
    s = runs.RunSummary(run_id="2024-01-01T00:00:00", pipeline_name="p", status="FAILED")
    s.executions = [runs.ExecutionInfo(1, "ImageExampleGen", "FAILED", 1000, 2000)]
    s.skipped_files = [
        {"path": "cats/<img src=x onerror=alert(1)>.jpg", "reason": "not an image & <b>bad</b>"}
    ]
    runs.write_run_record(
        tmp_path,
        s.run_id,
        {"run_id": s.run_id, "error": {"type": "E", "message": "<script>x</script>", "kind": "failure"}},
    )
    written = report.write_report(tmp_path / "metadata.sqlite", summary=s, run_root=tmp_path)
    text, page = read_page(written.path)
    assert "<img src=x" not in text and "<script>x" not in text and "<b>bad" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;script&gt;" in text
    assert page.key("verdict").startswith("Failed at ImageExampleGen")
    assert page.key("skipped/path") == "cats/<img src=x onerror=alert(1)>.jpg"
    assert written.path.parent == tmp_path / "reports" / "2024-01-01T00_00_00"


def test_run_record_round_trip_and_error_kinds(tmp_path):
    from graft.components.data_errors import DataValidationError

    path = runs.write_run_record(
        tmp_path, "2024-01-01T10:00:00.5", {"run_id": "2024-01-01T10:00:00.5", "a": 1}
    )
    assert path.name == "2024-01-01T10_00_00.5.json"
    runs.update_run_record(tmp_path, "2024-01-01T10:00:00.5", b=2)
    assert runs.read_run_record(tmp_path, "2024-01-01T10:00:00.5")["b"] == 2
    assert runs.read_run_record(tmp_path, "2024-01-01T10_00_00.5") is None  # keyed by the exact run id

    try:
        try:
            raise DataValidationError("class 'x' has 2 train examples")
        except DataValidationError as inner:
            raise RuntimeError("Execution 5 failed") from inner
    except RuntimeError as outer:
        err = runs.describe_error(outer)
    assert err == {
        "type": "DataValidationError",
        "message": "class 'x' has 2 train examples",
        "kind": "data_validation",
    }
    assert runs.describe_error(KeyboardInterrupt())["kind"] == "interrupted"
    assert runs.describe_error(ValueError("boom"))["kind"] == "failure"
    assert runs.describe_error(None) is None


def test_short_stage_name():
    assert report_stage("((ref_AppliedPTransform_Read-Examples_12))") == "Read-Examples"
    assert (
        report_stage(
            "((ref_AppliedPTransform_A-B_3)+(ref_AppliedPTransform_C_4))+(ref_AppliedPTransform_D_5)"
        )
        == "A-B (+2 fused)"
    )
    assert report_stage("Group by key/Read") == "Group by key/Read"


def report_stage(name: str) -> str:
    return local_runner.short_stage_name(name)


def test_progress_lines_survive_tensorflow_resetting_absl_verbosity():
    """TF's SavedModel code does `v = get_verbosity(); set_verbosity(FATAL); ...; set_verbosity(v)` while Transform
    and the Trainer save; the progress lines after Transform used to go missing."""
    from absl import logging as absl_logging

    stream = io.StringIO()
    before = absl_logging.get_verbosity()
    with local_runner.progress_logging(stream=stream):
        absl_logging.info("Component %s is running.", "Transform")
        saved = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.FATAL)
        absl_logging.set_verbosity(saved)
        absl_logging.info("Component %s is finished.", "Transform")
    assert absl_logging.get_verbosity() == before
    lines = stream.getvalue().splitlines()
    assert lines[0].split()[:3] == ["[graft]", "Transform", "running"]
    assert lines[1].split()[:3] == ["[graft]", "Transform", "done"]


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_beam_status_line_only_on_a_terminal(tty):
    import apache_beam as beam
    from absl import logging as absl_logging

    stream = _Tty() if tty else io.StringIO()
    beam_logger = logging.getLogger(local_runner.BEAM_BUNDLE_LOGGER)
    before = (beam_logger.level, beam_logger.propagate, list(beam_logger.handlers))
    with local_runner.progress_logging(stream=stream) as handler:
        absl_logging.info("Component %s is running.", "StatisticsGen")
        with beam.Pipeline() as p:
            _ = p | "Make numbers" >> beam.Create(range(50)) | "Square" >> beam.Map(lambda x: x * x)
        absl_logging.info("Component %s is finished.", "StatisticsGen")
    out = stream.getvalue()
    if tty:
        assert handler.beam_updates >= 1
        assert "beam stage 1, bundle 1: Make-numbers" in out
        # the status line is cleared before the next progress line
        assert out.rindex("\r\x1b[K[graft] StatisticsGen") > out.rindex("beam stage")
    else:
        assert handler.beam_updates == 0 and "beam stage" not in out and "\r" not in out
    assert (beam_logger.level, beam_logger.propagate, list(beam_logger.handlers)) == before


def test_report_and_runs_without_any_run_exit_2(tmp_path):
    r = CliRunner(mix_stderr=False).invoke(main, ["report", "--root", str(tmp_path)])
    assert r.exit_code == 2 and "no runs under" in r.stderr
    r = CliRunner(mix_stderr=False).invoke(main, ["runs", "--root", str(tmp_path)])
    assert r.exit_code == 2 and "no runs under" in r.stderr


# ---- slow: the real DAG ---------------------------------------------------------------------------------------
def make_images(root: Path, per_class: int = 20) -> None:
    rng = np.random.default_rng(0)
    for cls, colour in CLASSES.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("RGB", (40, 40), tuple(int(x) for x in rng.integers(0, 60, 3)))
            draw = ImageDraw.Draw(img)
            x, y = (int(v) for v in rng.integers(2, 12, 2))
            s = int(rng.integers(18, 26))
            if cls == "red_circle":
                draw.ellipse([x, y, x + s, y + s], fill=colour)
            elif cls == "green_square":
                draw.rectangle([x, y, x + s, y + s], fill=colour)
            else:
                draw.polygon([(x, y + s), (x + s, y + s), (x + s // 2, y)], fill=colour)
            img.save(d / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    (root / "red_circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


TRAIN = [
    "--set",
    "train.phase1_epochs=5",
    "--set",
    "train.phase1_learning_rate=0.01",
    "--set",
    "train.phase2_epochs=1",
    "--set",
    "train.batch_size=8",
]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """Five runs on one root: blessed; not blessed (weak retrain, strict floor); stopped by the data gate; stopped
    by bad files; an all-cached rerun with --no-report."""
    base = tmp_path_factory.mktemp("report_e2e")
    data, root = base / "data", base / "root"
    make_images(data)
    common = ["run", "--data", str(data), "--backbone", "tiny", "--root", str(root)]
    tolerant = ["--set", "data.max_bad_fraction=0.05"]
    results = {}

    def invoke(name, args):
        before = set(_run_ids(root))
        r = CliRunner(mix_stderr=False).invoke(main, common + args, catch_exceptions=False)
        new = sorted(set(_run_ids(root)) - before)
        assert len(new) == 1, (name, r.stdout, r.stderr)
        results[name] = {"result": r, "run_id": new[0]}

    invoke("blessed", TRAIN + tolerant)
    invoke(
        "not_blessed",
        [
            *tolerant,
            "--set",
            "train.phase1_epochs=1",
            "--set",
            "train.phase1_learning_rate=0.00001",
            "--set",
            "train.phase2_epochs=0",
            "--set",
            "train.batch_size=8",
            "--set",
            "evaluation.min_accuracy=1.0",
            "--set",
            "edge.variants=[]",  # its report is about the failed thresholds; the blessed run has the TFLite section
        ],
    )
    invoke("gate", TRAIN + tolerant + ["--set", "data.min_train_examples_per_class=1000"])
    invoke("bad_files", TRAIN)
    invoke("cached", TRAIN + tolerant + ["--no-report"])
    return {"root": root / "graft", "data": data, **results}


def _run_ids(root: Path) -> list[str]:
    md = root / "graft" / "metadata.sqlite"
    return runs.list_run_ids(runs.connect(md), "graft") if md.exists() else []


def _report_path(stderr_or_stdout: str) -> Path:
    m = re.search(r"(/\S+/report\.html)", stderr_or_stdout)
    assert m, stderr_or_stdout
    return Path(m.group(1))


def _mlmd_outputs(root: Path, run_id: str) -> dict[str, object]:
    """Artifacts of one run read straight from MLMD (not through graft.pipeline.runs), by type name."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(root / "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    ctx = store.get_context_by_type_and_name("pipeline_run", run_id)
    execs = store.get_executions_by_context(ctx.id)
    events = store.get_events_by_execution_ids([e.id for e in execs])
    ids = [ev.artifact_id for ev in events if ev.type == metadata_store_pb2.Event.OUTPUT]
    out: dict[str, list] = {}
    for a in store.get_artifacts_by_id(ids):
        out.setdefault(store.get_artifact_types_by_id([a.type_id])[0].name, []).append(a)
    return out


@pytest.mark.slow
def test_blessed_run_prints_progress_summary_and_report_path(runs_root):
    r = runs_root["blessed"]["result"]
    assert r.exit_code == 0, r.stderr
    nodes = [
        "ImageExampleGen",
        "CuratedSchemaGen",
        "StatisticsGen",
        "ExampleValidator",
        "DataGate",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    ]
    for node in nodes:
        assert re.search(rf"\[graft\] {node}\s+running \.\.\.", r.stderr), node
        assert re.search(rf"\[graft\] {node}\s+done\s+[\d.]+ s", r.stderr), (node, r.stderr)
    assert "beam stage" not in r.stderr  # not a terminal: plain lines only
    assert re.search(r"Epoch 6/6", r.stdout + r.stderr)  # Keras per-epoch progress, both phases on one count
    assert "blessed and pushed" in r.stdout
    path = _report_path(r.stdout)
    assert path.exists() and path.parent.parent == runs_root["root"] / "reports"


@pytest.mark.slow
def test_report_has_every_section_and_valid_pngs(runs_root):
    text, page = read_page(_report_path(runs_root["blessed"]["result"].stdout))
    assert page.sections == [
        "outcome",
        "components",
        "data",
        "samples",
        "training",
        "evaluation",
        "blessing",
        "tflite",
        "push",
        "config",
        "artifacts",
    ]
    # the TFLite variants table (components/edge): each variant scored, pushed or refused with its reason
    for variant in ("float16", "int8"):
        assert 0.0 <= float(page.key(f"tflite_{variant}_accuracy")) <= 1.0
        assert page.key(f"tflite_{variant}_pushed").startswith(("pushed: ", "not pushed: refused: accuracy"))
    files = {name for name, _ in page.images}
    assert files == {report.PNG_COUNTS, report.PNG_SAMPLES, report.PNG_CURVES, report.PNG_CONFUSION}
    folder = _report_path(runs_root["blessed"]["result"].stdout).parent
    for name, data in page.images:
        assert_png(data)
        assert (folder / name).read_bytes() == data  # the PNG beside the page is the embedded one
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")  # self-contained
    assert (folder / report.FACETS_FILE).exists()  # TFDV's Facets view, as a side file


@pytest.mark.slow
def test_report_numbers_match_mlmd(runs_root):
    import tensorflow_model_analysis as tfma

    root, run_id = runs_root["root"], runs_root["blessed"]["run_id"]
    _, page = read_page(_report_path(runs_root["blessed"]["result"].stdout))
    arts = _mlmd_outputs(root, run_id)

    pushed = arts["PushedModel"][0]
    assert page.key("pushed_version") == pushed.custom_properties["pushed_version"].string_value
    assert page.key("pushed_path") == pushed.custom_properties["pushed_destination"].string_value
    assert Path(page.key("pushed_path"), "saved_model.pb").exists()
    assert arts["ModelBlessing"][0].custom_properties["blessed"].int_value == 1
    assert page.key("blessed").startswith("BLESSED")

    gen = next(a for a in arts["Examples"] if "graft_counts" in a.custom_properties)
    counts = json.loads(gen.custom_properties["graft_counts"].string_value)
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            assert page.key(f"count/{split}/{cls}") == str(n)
        assert page.key(f"count/{split}") == str(sum(per_class.values()))
    assert page.key("count/all") == str(gen.custom_properties["graft_num_examples"].int_value) == "60"
    assert page.key("skipped/path") == "red_circle/broken.jpg"

    evaluation = tfma.load_eval_result(arts["ModelEvaluation"][0].uri)
    overall = dict(evaluation.slicing_metrics)[()][""][""]
    acc = overall["sparse_categorical_accuracy"]["doubleValue"]
    assert page.key("test/sparse_categorical_accuracy") == f"{acc:.4f}" == page.key("outcome/accuracy")
    n_test = int(overall["example_count"]["doubleValue"])
    assert page.key("test/example_count") == str(n_test) == str(sum(counts["test"].values()))
    cm = [[int(page.key(f"cm/{a}/{p}")) for p in range(3)] for a in range(3)]
    assert sum(map(sum, cm)) == n_test
    assert sum(cm[i][i] for i in range(3)) / n_test == pytest.approx(acc)
    names = sorted(CLASSES)
    for i, name in enumerate(names):
        assert page.key(f"support/{name}") == str(sum(cm[i])) == str(counts["test"][name])

    history = json.loads((Path(arts["Model"][0].uri) / "training_history.json").read_text())
    for p in history["phases"]:
        assert page.key(f"phase{p['phase']}/epochs") == str(p["epochs_run"])
    assert page.key("samples/size") == "32×32"
    config = yaml.safe_load(page.key("config"))
    assert config["train"]["phase1_epochs"] == 5 and config["data"]["max_bad_fraction"] == 0.05
    assert config["backbone"]["handle"] == "tiny"
    for e in runs.summarize(root / "metadata.sqlite", run_id, "graft").executions:
        assert page.key(f"state/{e.node_id}") == e.state.lower()


@pytest.mark.slow
def test_sample_images_are_the_transformed_pixels_of_each_class(runs_root):
    s = runs.summarize(runs_root["root"] / "metadata.sqlite", runs_root["blessed"]["run_id"], "graft")
    samples = report.sample_images(s.outputs["Transform.transformed_examples"], s.class_names, per_class=8)
    assert sorted(samples) == sorted(CLASSES)
    for cls, imgs in samples.items():
        assert len(imgs) == 8
        for img in imgs:
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8
            # The class's colour covers part of every image; the other classes' colours cover none of it.
            for other, colour in CLASSES.items():
                near = (np.abs(img.astype(int) - np.array(colour)).max(axis=-1) < 40).mean()
                assert (near > 0.05) if other == cls else (near < 0.01), (cls, other, near)


@pytest.mark.slow
def test_not_blessed_report_says_which_thresholds_failed(runs_root):
    import tensorflow_model_analysis as tfma

    r = runs_root["not_blessed"]["result"]
    assert r.exit_code == 0, r.stderr
    assert "NOT blessed" in r.stdout
    _, page = read_page(_report_path(r.stdout))
    assert page.key("verdict").startswith("NOT blessed")
    assert page.key("blessed").startswith("NOT BLESSED")
    assert page.key("pushed_version").startswith("Nothing was pushed")
    uri = _mlmd_outputs(runs_root["root"], runs_root["not_blessed"]["run_id"])["ModelEvaluation"][0].uri
    validation = tfma.load_validation_result(uri)
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert failures and not validation.validation_ok
    results = {int(k.split("/")[1]): v[0] for k, v in page.keys.items() if k.endswith("/result")}
    assert list(results.values()).count("FAIL") == len(failures)  # one FAIL row per failure TFMA recorded
    # Each failed row shows the value TFMA measured (the candidate's value, or its change vs the baseline).
    measured = sorted(round(f.metric_value.double_value.value, 4) for f in failures)
    shown = sorted(
        round(
            float(
                page.key(
                    f"check/{i}/{'candidate' if page.key(f'check/{i}/rule').startswith('value') else 'change'}"
                )
            ),
            4,
        )
        for i, result in results.items()
        if result == "FAIL"
    )
    assert shown == pytest.approx(measured, abs=1e-4)
    # The baseline is the blessed run's model, named in the blessing section.
    text, _ = read_page(_report_path(r.stdout))
    assert runs_root["blessed"]["run_id"] in text


@pytest.mark.slow
def test_data_gate_stop_report_says_why(runs_root):
    r = runs_root["gate"]["result"]
    assert r.exit_code == 3
    assert "stopped by data validation" in r.stderr
    text, page = read_page(_report_path(r.stderr))
    assert page.key("verdict") == "Stopped by data validation at DataGate: nothing was trained or pushed."
    assert "fewer than data.min_train_examples_per_class=1000" in text
    assert page.key("state/DataGate") == "failed"
    assert page.key("count/train") == "48"  # the data summary is there: ExampleGen ran (cached)
    for section in ("samples", "training", "evaluation", "blessing", "tflite", "push"):
        assert (
            "the run stopped at DataGate before"
            in text.split(f'<section id="{section}">')[1].split("</section>")[0]
        )


@pytest.mark.slow
def test_bad_files_stop_report_lists_them(runs_root):
    r = runs_root["bad_files"]["result"]
    assert r.exit_code == 3
    text, page = read_page(_report_path(r.stderr))
    assert page.key("verdict").startswith("Stopped by data validation at ImageExampleGen")
    assert page.key("skipped/path") == "red_circle/broken.jpg"
    assert "max_bad_fraction" in text


@pytest.mark.slow
def test_runs_lists_every_run_from_mlmd(runs_root):
    root = runs_root["root"].parent
    r = CliRunner(mix_stderr=False).invoke(main, ["runs", "--root", str(root)])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "START",
        "DURATION",
        "STATUS",
        "TEST",
        "ACC",
        "BLESSED",
        "PUSHED",
    ]
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert list(by_id) == [
        runs_root[k]["run_id"] for k in ("blessed", "not_blessed", "gate", "bad_files", "cached")
    ]
    blessed = runs.summarize(runs_root["root"] / "metadata.sqlite", runs_root["blessed"]["run_id"], "graft")
    acc = f"{blessed.test_metrics['sparse_categorical_accuracy']:.4f}"
    assert re.search(
        rf"\scomplete\s+{acc}\s+yes\s+{blessed.pushed_version}$", by_id[runs_root["blessed"]["run_id"]]
    )
    assert re.search(r"\scomplete\s+\d\.\d{4}\s+no\s+-$", by_id[runs_root["not_blessed"]["run_id"]])
    assert "stopped: data validation" in by_id[runs_root["gate"]["run_id"]]
    assert "stopped: data validation" in by_id[runs_root["bad_files"]["run_id"]]
    assert re.search(
        rf"complete \(all cached\)\s+{acc}\s+yes\s+{blessed.pushed_version}$",
        by_id[runs_root["cached"]["run_id"]],
    )

    r = CliRunner(mix_stderr=False).invoke(main, ["runs", "--root", str(root), "--json", "--limit", "2"])
    rows = json.loads(r.stdout)
    assert [x["run_id"] for x in rows] == [runs_root["bad_files"]["run_id"], runs_root["cached"]["run_id"]]
    assert rows[1]["blessed"] is True and rows[1]["pushed_version"] == blessed.pushed_version
    assert rows[1]["test_accuracy"] == pytest.approx(blessed.test_metrics["sparse_categorical_accuracy"])


@pytest.mark.slow
def test_report_command_and_no_report_flag(runs_root, tmp_path):
    root = runs_root["root"]
    cached_id = runs_root["cached"]["run_id"]
    assert "report.html" not in runs_root["cached"]["result"].stdout  # --no-report
    assert "`graft report` lists them" in runs_root["cached"]["result"].stdout
    assert not report.default_out_dir(root, cached_id).exists()
    assert (
        runs.read_run_record(root, cached_id)["config"]["enable_cache"] is True
    )  # the run record is still written

    r = CliRunner(mix_stderr=False).invoke(
        main, ["report", cached_id, "--root", str(root.parent), "--out", str(tmp_path / "rep")]
    )
    assert r.exit_code == 0, r.stderr
    assert Path(r.stdout.strip()) == tmp_path / "rep" / report.REPORT_FILE
    _, page = read_page(tmp_path / "rep" / report.REPORT_FILE)
    assert page.key("verdict").startswith("Blessed earlier; nothing new pushed")
    assert all(page.key(f"state/{n}") == "cached" for n in ("Transform", "Trainer", "Evaluator", "Pusher"))

    r = CliRunner(mix_stderr=False).invoke(main, ["report", "no-such-run", "--root", str(root.parent)])
    assert r.exit_code == 2 and "no run 'no-such-run'" in r.stderr and cached_id in r.stderr
