"""Errors whose message is shown to the user as is: what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and a value that would."""


class TrainingDivergedError(RuntimeError):
    """Too many non-finite steps in a row."""
