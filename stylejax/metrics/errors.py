"""The exception for bad metric input: its message is one line that says what to do."""

from stylejax.errors import StylejaxError


class MetricsError(StylejaxError, ValueError):
    """A metric cannot be computed as asked; `str(error)` is meant to be shown as is."""
