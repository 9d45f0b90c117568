"""The exception for bad dataset input: its message is one line that says what to do."""


class DatasetError(ValueError):
    """A dataset cannot be prepared or read; `str(error)` is meant to be shown as is."""
