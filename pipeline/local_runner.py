"""Run the DAG locally: LocalDagRunner, sqlite MLMD under the run root, Beam DirectRunner. Thin on purpose.

Adds only what a local user needs around ``LocalDagRunner().run``:

* a lock on the run root, so two ``graft run`` on the same root never interleave (the second one exits with a clear
  message naming the holder; MLMD's sqlite file is never written by two pipelines at once);
* progress lines (each component's start, end, duration, cached or not) read from TFX's own log records; on a
  terminal, a status line for Beam steps that moves with each bundle Beam's in-process runner executes (Beam's own
  progress signal: the stage it runs; no percentage, since the runner does not publish a stage total);
* a run record next to the run: ``<run_root>/runs/<run id>.json`` (the effective config, the backbone, how it
  ended), keyed by the ``pipeline_run`` context LocalDagRunner creates;
* the run summary read back from MLMD afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
import time
from collections.abc import Iterator

from graft.pipeline.config import GraftConfig
from graft.pipeline.run_lock import LOCK_NAME, RunLockedError, run_lock

# Re-exported: callers found the run lock here before it had its own module.
__all__ = ["LOCK_NAME", "RunLockedError", "run_lock", "run_pipeline"]


# Warnings TFX / TFT / TF log on every healthy run; they say nothing actionable to a Graft user.
_EXECUTION_FAILED_RE = re.compile(r"^Execution \d+ failed\.?$")
BENIGN_WARNINGS = (
    "ArtifactQuery.property_predicate is not supported",
    "Tables initialized inside a tf.function",
    "does not have payload_format custom property",
    "No training configuration found in save file",
)


class ProgressHandler(logging.Handler):
    """Turns TFX's 'Component X is running/finished' log records into one progress line each.

    With ``live=True`` (a terminal), :meth:`beam_bundle` keeps one overwritten status line under the running
    component: elapsed seconds, Beam stages and bundles executed so far, and the current stage.
    """

    def __init__(self, stream=None, quiet: bool = False, live: bool = False):
        super().__init__(logging.INFO)
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = live and not quiet
        self._start: dict[str, float] = {}
        self._cached: set[str] = set()
        self._current: str | None = None
        self.durations: dict[str, float] = {}
        self._status_shown = False
        self._stages: set[str] = set()
        self._bundles = 0
        self._last_render = 0.0
        self.beam_updates = 0  # status lines drawn (for tests and the curious)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if record.levelno >= logging.WARNING:
            if any(b in record.getMessage() for b in BENIGN_WARNINGS):
                return
            if _EXECUTION_FAILED_RE.match(record.getMessage()):
                # TFX's launcher says only "Execution 5 failed." before the real explanation, which the command
                # prints next: name the component instead of its MLMD execution id.
                self._print(f"[graft] {self._current or 'a component'} failed")
                return
            # absl's own handler is detached while we run (its INFO flood hides the progress); keep its warnings.
            self._print(f"[graft] {record.levelname.lower()}: {record.getMessage()}")
            return
        if not isinstance(msg, str) or not record.args:
            return
        if msg.startswith("Component %s is running"):
            node = str(record.args[0])
            self._current = node
            self._start[node] = time.perf_counter()
            self._stages.clear()
            self._bundles = 0
            self._print(f"[graft] {node:<28} running ...")
        elif msg.startswith("A cached execution %d is used") and self._current:
            self._cached.add(self._current)
        elif msg.startswith("Component %s is finished"):
            node = str(record.args[0])
            seconds = time.perf_counter() - self._start.get(node, time.perf_counter())
            self.durations[node] = seconds
            how = "cached" if node in self._cached else "done"
            self._print(f"[graft] {node:<28} {how:<6} {seconds:6.1f} s")

    def _print(self, line: str) -> None:
        if not self.quiet:
            self._clear_status()
            print(line, file=self.stream, flush=True)

    # ---- the live Beam status line -------------------------------------------------------------------------
    def beam_bundle(self, stage_name: str) -> None:
        """Beam's in-process runner is about to execute a bundle of ``stage_name``."""
        if not self.live:
            return
        self._stages.add(stage_name)
        self._bundles += 1
        now = time.perf_counter()
        if now - self._last_render < 0.1:
            return
        self._last_render = now
        node = self._current or "beam"
        elapsed = now - self._start.get(node, now)
        line = (
            f"[graft] {node:<28} {elapsed:4.0f} s  beam stage {len(self._stages)}, bundle {self._bundles}: "
            f"{short_stage_name(stage_name)}"
        )
        width = shutil.get_terminal_size((100, 20)).columns
        width = width if width >= 40 else 100  # a pseudo-terminal may report 0 columns
        self.stream.write("\r" + line[: max(20, width - 1)] + "\x1b[K")
        self.stream.flush()
        self._status_shown = True
        self.beam_updates += 1

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False


# Beam's FnApiRunner (the DirectRunner's in-memory / multi-threaded / multi-process engine) logs each bundle it
# executes on this logger at DEBUG: "Running bundle for stage %s ...". It is the progress Beam exposes locally.
BEAM_BUNDLE_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle"
_STAGE_PART_RE = re.compile(r"ref_AppliedPTransform_(.+?)_\d+$")


def short_stage_name(stage: str) -> str:
    """'((ref_AppliedPTransform_Analyze-Foo_12)+(ref_..._13))' -> 'Analyze-Foo (+1 fused)'."""
    parts = [p.strip("()") for p in re.split(r"\)\+\(", str(stage)) if p.strip("()")]
    if not parts:
        return str(stage)
    first = parts[0]
    m = _STAGE_PART_RE.match(first)
    name = m.group(1) if m else first
    return name + (f" (+{len(parts) - 1} fused)" if len(parts) > 1 else "")


class _BeamBundleHandler(logging.Handler):
    def __init__(self, progress: ProgressHandler):
        super().__init__(logging.DEBUG)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("Running bundle for stage") and record.args:
            self.progress.beam_bundle(str(record.args[0]))


@contextlib.contextmanager
def progress_logging(quiet: bool = False, verbose: bool = False, stream=None) -> Iterator[ProgressHandler]:
    """Route TFX's component records to a :class:`ProgressHandler` while a pipeline runs; restore logging after.

    absl's verbosity is set through its flag, not only the logger level: TensorFlow's SavedModel code saves and
    restores ``absl.logging`` verbosity around attribute scans (``autotrackable._trackable_children``), which resets
    the absl logger to the flag's level (WARNING by default), and the progress lines after Transform went missing.
    """
    from absl import logging as absl_logging

    stream = stream or sys.stderr
    live = not quiet and not verbose and hasattr(stream, "isatty") and stream.isatty()
    handler = ProgressHandler(stream=stream, quiet=quiet, live=live)
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(handler)
    old_level, old_propagate = absl_logger.level, absl_logger.propagate
    old_verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger.setLevel(logging.INFO)
    if not verbose:
        # Keep absl's INFO flood out of the user's terminal; our handler still sees the records.
        absl_logger.propagate = False
    beam_logger = logging.getLogger(BEAM_BUNDLE_LOGGER)
    beam_handler = _BeamBundleHandler(handler)
    old_beam = (beam_logger.level, beam_logger.propagate)
    if live:
        beam_logger.addHandler(beam_handler)
        beam_logger.setLevel(logging.DEBUG)
        beam_logger.propagate = False  # DEBUG records must not reach root's handlers
    try:
        yield handler
    finally:
        handler._clear_status()
        if live:
            beam_logger.removeHandler(beam_handler)
            beam_logger.setLevel(old_beam[0])
            beam_logger.propagate = old_beam[1]
        absl_logger.removeHandler(handler)
        absl_logging.set_verbosity(old_verbosity)
        absl_logger.setLevel(old_level)
        absl_logger.propagate = old_propagate


@contextlib.contextmanager
def _quiet_third_party_logs(verbose: bool) -> Iterator[None]:
    """TF/Beam/TFMA chatter is for debugging, not for users (-v shows it); errors always show."""
    import warnings

    names = ("apache_beam", "tensorflow", "tensorflow_transform", "tfx_bsl", "h5py")
    saved = {n: logging.getLogger(n).level for n in names}
    if verbose:
        yield
        return
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # TFMA divides 0/0 for classes absent from a slice
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            yield
        finally:
            for n, level in saved.items():
                logging.getLogger(n).setLevel(level)


def run_pipeline(cfg: GraftConfig, quiet: bool = False, verbose: bool = False):
    """Build the DAG from the config and run it with LocalDagRunner. Returns the run's MLMD summary."""
    from graft.pipeline import dag, dag_inputs, recovery, runs

    recovery.check_writable(cfg)  # a read-only root or serving directory stops the run now, not at the Pusher
    cfg.run_root.mkdir(parents=True, exist_ok=True)
    with run_lock(cfg.run_root):
        # Executions left RUNNING by a killed graft run: recorded as failed, partial outputs removed.
        for line in recovery.close_abandoned_executions(cfg):
            if not quiet:
                print(line, file=sys.stderr, flush=True)
        from graft.pipeline import task as task_mod

        task = task_mod.detect_task(cfg)
        backbone = task_mod.resolve_backbone_for(cfg, task)
        pipeline = dag.create_pipeline(cfg, backbone, dag_inputs.resolve(cfg, task=task))
        if task == task_mod.TEXT and cfg.edge.variants and not dag.edge_variants(cfg, task) and not quiet:
            print(f"[graft] {dag.TEXT_TFLITE_SKIPPED}", file=sys.stderr, flush=True)

        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        before = _known_run_ids(cfg)
        # Beam and absl parse sys.argv inside the executors (e.g. `-v` becomes absl's --verbosity): they must see
        # none of graft's own command-line arguments.
        saved_argv = sys.argv
        sys.argv = sys.argv[:1]
        error: BaseException | None = None
        started = time.time()
        try:
            with progress_logging(quiet, verbose), _quiet_third_party_logs(verbose):
                LocalDagRunner().run(pipeline)
        except BaseException as e:
            error = e
            raise
        finally:
            sys.argv = saved_argv
            run_id = _record_run(cfg, backbone, before, started, error, saved_argv)
        summary = runs.summarize(cfg.metadata_path, run_id or "latest", cfg.name)
        if run_id:
            runs.update_run_record(cfg.run_root, run_id, evaluation=runs.evaluation_cache_entry(summary))
        return summary


def _known_run_ids(cfg: GraftConfig) -> set[str]:
    from graft.pipeline import runs

    if not cfg.metadata_path.exists():
        return set()
    try:
        return set(runs.list_run_ids(runs.connect(cfg.metadata_path), cfg.name))
    except Exception:  # noqa: BLE001 - a missing record must never fail a run
        return set()


def _record_run(cfg, backbone, before: set[str], started: float, error, argv) -> str | None:
    """Write <run_root>/runs/<run id>.json for the run LocalDagRunner just made (the one new pipeline_run context:
    the run lock keeps other runs of this root out). Returns the run id, or None when no run was recorded."""
    from graft.pipeline import runs

    try:
        new = sorted(_known_run_ids(cfg) - before)
        if len(new) != 1:
            return None
        run_id = new[0]
        runs.write_run_record(
            cfg.run_root,
            run_id,
            {
                "run_id": run_id,
                "pipeline_name": cfg.name,
                "graft_version": _graft_version(),
                "command": " ".join(["graft", *argv[1:]]) if argv else "",
                "started": started,
                "finished": time.time(),
                "config": cfg.to_dict(),
                "backbone": backbone.to_dict() if hasattr(backbone, "to_dict") else None,
                "error": runs.describe_error(error),
            },
        )
        return run_id
    except Exception as e:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not write the run record: %s", e)
        return None


def _graft_version() -> str:
    from graft import __version__

    return __version__
