"""graft.errors: the one table from an error to the CLI's exit code, used by `graft run`, the run records and the
local run of a compiled spec alike."""

from __future__ import annotations

from graft import errors
from graft.components.backbones import BackboneError
from graft.components.data_errors import DataValidationError, TooManyBadFilesError
from graft.kubeflow.compile import CompileError
from graft.kubeflow.local_run import LocalRunError
from graft.pipeline.config import ConfigError


def _raise_from(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception as e:
            raise outer from e
    except Exception as e:  # noqa: BLE001
        return e


def test_codes_by_class_and_subclass():
    assert errors.exit_code(ConfigError("x")) == errors.EXIT_USAGE
    assert errors.exit_code(CompileError("x")) == errors.EXIT_USAGE  # a subclass of ConfigError
    assert errors.exit_code(BackboneError("x")) == errors.EXIT_USAGE
    assert errors.exit_code(TooManyBadFilesError("x")) == errors.EXIT_DATA_VALIDATION
    assert errors.exit_code(RuntimeError("x")) == errors.EXIT_FAILED
    from graft.components.backbones import WeightsMissingError

    assert (
        errors.exit_code(WeightsMissingError("x")) == errors.EXIT_FAILED
    )  # more specific than BackboneError


def test_a_data_stop_anywhere_in_the_chain_wins_and_is_the_telling_error():
    inner = DataValidationError("only 1 class")
    e = _raise_from(RuntimeError("component DataGate failed"), inner)
    assert errors.classify(e) == (errors.EXIT_DATA_VALIDATION, inner)
    usage = ConfigError("config key 'data.path': empty")
    assert errors.classify(_raise_from(RuntimeError("wrapped"), usage)) == (errors.EXIT_USAGE, usage)


def test_a_data_stop_of_another_process_is_seen_in_its_log_and_flag():
    assert errors.mentions_data_error("...\ngraft.components.data_errors.NoImagesFoundError: no usable image")
    assert not errors.mentions_data_error("Traceback ... ValueError: bad")
    flagged = LocalRunError("task 'DataGate' exited with 1", task="DataGate", data_validation=True)
    assert errors.exit_code(flagged) == errors.EXIT_DATA_VALIDATION
    assert (
        errors.exit_code(LocalRunError("task 'Trainer' exited with 1", task="Trainer")) == errors.EXIT_FAILED
    )
