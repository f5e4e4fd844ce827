"""What several command groups share: loading the config with its error as exit code 2, JSON output.

Light on purpose (no TensorFlow): every command module imports it, and ``graft --help`` imports them all.
"""

from __future__ import annotations

import sys

import click

from graft.errors import EXIT_USAGE

# Stated in every command's --help that takes a config, and in the README's config section.
PRECEDENCE = (
    "Precedence: defaults < --config FILE < --set KEY=VALUE < this command's own flags (e.g. --data)."
)


def _load(config_file, overrides, base=None, flags=None) -> object:
    """The effective config: defaults < ``base`` (a command's own defaults) < --config < --set < ``flags``."""
    from graft.pipeline.config import ConfigError, load_config

    try:
        return load_config(config_file, list(overrides), base=base, flags=flags)
    except ConfigError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_USAGE)


def _echo_json(payload) -> None:
    import json

    click.echo(json.dumps(payload, indent=2, default=str))
