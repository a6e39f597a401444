"""Argument types the collector's commands share: a threshold, a name, the default reviewer."""

from __future__ import annotations

import argparse
import getpass

from prefloop_core.ids import check_slug
from prefloop_collector.text import parse_threshold


def threshold(text: str) -> float:
    try:
        return parse_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def name(text: str) -> str:
    try:
        return check_slug(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_reviewer() -> str:
    """The OS user name when it is a valid name, else `reviewer`."""
    try:
        return check_slug(getpass.getuser())
    except ValueError:
        return "reviewer"
