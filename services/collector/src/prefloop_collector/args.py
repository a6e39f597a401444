"""Argument types the collector's commands share: a threshold, a name, an item id, the default reviewer."""

from __future__ import annotations

import argparse
import getpass

from prefloop_core.contracts import SQL_INT_MAX
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


def item_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an item id: give the number `prefloop review` shows") from None
    if not 1 <= value <= SQL_INT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is not an item id: ids are from 1 up")
    return value


def default_reviewer() -> str:
    """The OS user name when it is a valid name, else `reviewer`."""
    try:
        return check_slug(getpass.getuser())
    except ValueError:
        return "reviewer"
