"""Subcommands of the training stage (``psplava train``, ``evaluate``, ``report``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training stage's subcommands to the ``psplava`` parser."""
