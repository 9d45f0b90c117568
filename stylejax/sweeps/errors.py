"""Errors whose message is shown to the user as is: what is wrong with a sweep and how to fix it."""


class SweepError(ValueError):
    """A sweep file, its config or its study that cannot work; raised before any trial starts."""
