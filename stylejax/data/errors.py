"""The exception for bad dataset input: its message is one line that says what to do."""

from stylejax.errors import StylejaxError


class DatasetError(StylejaxError, ValueError):
    """A dataset cannot be prepared or read; `str(error)` is meant to be shown as is."""
