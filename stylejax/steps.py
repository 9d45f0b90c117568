"""The --step value naming a checkpoint; without orbax, so that parsing a command line that
may not need a checkpoint imports none of it."""

from stylejax.errors import UsageError

BEST = "best"  # the --step of the best checkpoint


def parse_step(text: str | None) -> int | str | None:
    """A --step value: a step number, 'best' for the best checkpoint, or None (the latest)."""
    if text is None or text == BEST:
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--step {text!r} is neither a step number nor {BEST!r}") from None
