"""What every stylejax command line shares: absl flags on the CLI's own FlagValues (so CLIs can be
called in one process, as the tests do), one `error:` line and exit status 2 for input the user
can fix (a bad flag or a StylejaxError), 128 + N when signal N stopped the work."""

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

from absl import flags

from stylejax.errors import SignalStopError, StylejaxError

HELP = ("--help", "-h", "--helpshort", "-?")


def run(command: Callable[[list[str]], None], flag_values: flags.FlagValues, doc: str,
        argv: list[str]) -> int:
    """Parses argv[1:] into `flag_values` and calls `command` with the positional arguments;
    returns the exit status. Every other exception is a bug and propagates."""
    prog = f"python -m {argv[0]}" if not argv[0].endswith(".py") else argv[0]
    if any(arg in HELP for arg in argv[1:]):
        print(f"{doc.strip()}\n\nflags:\n{flag_values.get_help(include_special_flags=False)}")
        return 0
    flag_values.unparse_flags()  # the defaults again, for a second call in one process
    try:
        positional = flag_values(argv)[1:]
    except flags.Error as e:
        print(f"error: {'; '.join(str(e).splitlines())} (see {prog} --help)", file=sys.stderr)
        return 2
    return call(command, positional)


def call(command: Callable[..., None], *args) -> int:
    """`command(*args)`'s exit status: 0, or 2 with its one line for a StylejaxError, or 128 + N
    when signal N stopped it."""
    try:
        command(*args)
    except StylejaxError as e:
        logging.getLogger("stylejax").debug("refused", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SignalStopError as e:
        print(e, file=sys.stderr)
        return 128 + e.signum  # the shell's code for "ended by this signal"
    return 0


class OrbaxNotesFilter(logging.Filter):
    """Drops orbax's INFO notes (a dozen lines per save) and the tracebacks it logs of a failed
    read or write, which stylejax raises as a one-line CheckpointError; its other warnings stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "/orbax/" not in record.pathname:
            return True
        return record.levelno >= logging.WARNING and record.exc_info is None


_ORBAX_NOTES = OrbaxNotesFilter()


def quiet_orbax() -> None:
    """Orbax logs through absl's logger; only its notes and tracebacks are filtered."""
    logging.getLogger("absl").addFilter(_ORBAX_NOTES)


@contextlib.contextmanager
def readable_logging() -> Iterator[None]:
    """Shows stylejax's progress and warnings as 'LEVEL: message' (not TFDS's INFO chatter)."""
    logger = logging.getLogger("stylejax")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


class ListParser(flags.ArgumentParser):
    """A flag holding a list, parsed by `parse` (which raises ValueError with the fix)."""

    def __init__(self, parse: Callable[[str], list], kind: str):
        self._parse, self._kind = parse, kind

    def parse(self, argument: str | list) -> list:
        return argument if isinstance(argument, list) else self._parse(argument)

    def flag_type(self) -> str:
        return self._kind


def define_list(name: str, default: list | None, parse: Callable[[str], list], kind: str,
                help_text: str, flag_values: flags.FlagValues) -> None:
    """A flag whose value is a list parsed by `parse`, e.g. seeds 0-7,42."""
    serializer = flags.ListSerializer(",")
    flags.DEFINE(ListParser(parse, kind), name, default, help_text, flag_values, serializer)


def define_generator_source(flag_values: flags.FlagValues) -> None:
    """--workdir or --network, exactly one: where a generator is read from."""
    flags.DEFINE_string("workdir", None, "the training run's --workdir", flag_values=flag_values)
    flags.DEFINE_string("network", None, "an official network file (stylegan2-ada-pytorch or TF "
                                         "StyleGAN or StyleGAN2 .pkl)", flag_values=flag_values)
    flags.mark_flags_as_mutual_exclusive(["workdir", "network"], required=True, flag_values=flag_values)
