"""Errors whose message is shown to the user as is: what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and a value that would."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored (or saved); nothing on disk was deleted or overwritten."""


class NetworkFileError(ValueError):
    """A network file (an official pickle) that cannot be read or used; the message names the
    file and what is wrong with it. Nothing from the file was executed."""


class TrainingDivergedError(RuntimeError):
    """Too many non-finite steps in a row."""


class TrainingInterruptedError(Exception):
    """SIGTERM or Ctrl-C stopped the run after a checkpoint of the last finished step was saved."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
