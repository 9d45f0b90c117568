"""The --step argument naming a checkpoint; without orbax, so that parsing a command line that
may not need a checkpoint imports none of it."""

import argparse

BEST = "best"  # the --step of the best checkpoint


def parse_step(text: str) -> int | str:
    """A --step argument: a step number, or 'best' for the best checkpoint."""
    if text == BEST:
        return BEST
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a step number nor {BEST!r}") from None
