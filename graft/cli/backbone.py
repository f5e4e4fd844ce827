"""``graft backbone import|tiny|show``: build offline TF Hub modules, show what Graft reads from a handle."""

from __future__ import annotations

import sys

import click


# ---- graft backbone ... -----------------------------------------------------------------------------------------
@click.group("backbone")
def backbone_group() -> None:
    """Backbones: build offline TF Hub modules, show what Graft reads from a handle."""


def _backbone_fail(e: Exception) -> None:
    from graft import errors

    click.echo(f"graft: {e}", err=True)
    sys.exit(errors.exit_code(e))


@backbone_group.command("import")
@click.argument("name", type=click.Choice(["mobilenet_v1_imagenet"]))
@click.option(
    "--size",
    type=click.Choice(["224", "192", "160", "128"]),
    default="224",
    show_default=True,
    help="Input size.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Parent directory for the modules (default: the cache, $TFHUB_CACHE_DIR or ~/.cache/graft/hub).",
)
@click.option("--force", is_flag=True, help="Rebuild even if an identical build exists.")
def backbone_import(name, size, out_dir, force):
    """Build the ImageNet MobileNet V1 1.0 feature-vector module (and its classifier) offline.

    Prints the feature-vector module's path last. Building again is a no-op.
    """
    from graft.components import backbones

    try:
        fv, cls = backbones.import_mobilenet_v1(int(size), out_dir=out_dir, force=force)
    except backbones.BackboneError as e:
        _backbone_fail(e)
    click.echo(f"classifier (1000 ImageNet logits): {cls}")
    click.echo(f"feature vector ({backbones.MOBILENET}, backbone.handle={backbones.MOBILENET}):")
    click.echo(str(fv))


@backbone_group.command("tiny")
@click.option("--size", type=int, default=32, show_default=True, help="Input size (16-1024).")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Parent directory (default: the cache)."
)
@click.option("--force", is_flag=True, help="Rebuild even if an identical build exists.")
def backbone_tiny(size, out_dir, force):
    """Build a small random-init CNN module (seeded, seconds) for tests. Prints its path last."""
    from graft.components import backbones

    try:
        path = backbones.build_tiny(size, out_dir=out_dir, force=force)
    except backbones.BackboneError as e:
        _backbone_fail(e)
    click.echo(str(path))


@backbone_group.command("show")
@click.argument("handle")
@click.option(
    "--input-size", type=int, default=None, help="For modules that accept any size (backbone.input_size)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def backbone_show(handle, input_size, as_json):
    """Print what Graft reads from HANDLE: input size and range, feature size, variables, path.

    HANDLE: a TF Hub URL, a gs:// path, a local SavedModel directory, or mobilenet_v1_imagenet / tiny.
    """
    import json

    from graft.components import backbones

    try:
        info = backbones.resolve_backbone(handle, input_size)
    except backbones.BackboneError as e:
        _backbone_fail(e)
    click.echo(json.dumps(info.to_dict(), indent=2) if as_json else info.describe())
