"""Command-line plumbing shared by the network training scripts: a dataclass config as
``--options``, and shipping the final weights to ``weights/`` with a manifest entry. Training
only."""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
from dataclasses import fields
from typing import Any

__all__ = ["add_config_arguments", "config_from_args", "ship"]


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One ``--field-name`` option per field of the dataclass ``config_cls`` (its defaults and
    types), plus ``--ship`` and ``--metrics`` (JSON) for :func:`ship`."""
    for f in fields(config_cls):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default
        )
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--metrics", type=str, default="{}")


def config_from_args(args: argparse.Namespace, config_cls: type) -> Any:
    return config_cls(**{f.name: getattr(args, f.name) for f in fields(config_cls)})


def ship(
    path: pathlib.Path,
    target: pathlib.Path,
    *,
    command: str,
    seed: int,
    data: str,
    metrics: str,
    licence: str,
) -> None:
    """Copy the trained weights ``path`` to ``target`` (in ``weights/``) and register them in
    the manifest beside it with the command, data, measured ``metrics`` (JSON) and licence."""
    from recon3d.weights import register_file

    shutil.copyfile(path, target)
    register_file(
        target,
        command=command,
        seed=seed,
        data=data,
        metrics=json.loads(metrics),
        licence=licence,
    )
