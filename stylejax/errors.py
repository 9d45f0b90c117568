"""The errors a user can fix. Each message says what is wrong and how to fix it; the CLIs show it
in one line with exit status 2. Any other exception is a bug and surfaces with its traceback."""


class StylejaxError(Exception):
    """Bad input (a config value, a file, a command-line value); `str(error)` is shown as is."""


class ConfigError(StylejaxError, ValueError):
    """A config value that cannot work; the message names the key and a value that would."""


class UsageError(StylejaxError, ValueError):
    """A command-line value that cannot work; the message names the flag and a value that would."""


class CheckpointError(StylejaxError):
    """A checkpoint that cannot be restored (or saved); nothing on disk was deleted or overwritten."""


class NetworkFileError(StylejaxError):
    """A network file (an official pickle) that cannot be read or used; the message names the
    file and what is wrong with it. Nothing from the file was executed."""


class TrainingDivergedError(StylejaxError):
    """Too many non-finite steps in a row."""


class SignalStopError(Exception):
    """SIGTERM or Ctrl-C stopped the work cleanly (training: after saving the last finished step;
    dataset preparation: leaving nothing behind); the message says so."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
