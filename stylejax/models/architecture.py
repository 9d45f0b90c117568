"""Architecture arithmetic shared by G and D, and the checks that guard it."""

MIN_RESOLUTION = 8
MAX_RESOLUTION = 1024


def check_resolution(resolution: int) -> None:
    if (not isinstance(resolution, int) or resolution < MIN_RESOLUTION
            or resolution > MAX_RESOLUTION or resolution & (resolution - 1)):
        raise ValueError(
            f"resolution must be a power of two from {MIN_RESOLUTION} to {MAX_RESOLUTION}, "
            f"got {resolution!r}; resize the dataset to e.g. 32, 256 or 1024")


def log2(resolution: int) -> int:
    return resolution.bit_length() - 1


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at one resolution: min(channel_base // res, channel_max)."""
    return min(channel_base // res, channel_max)


def check_channels(resolution: int, channel_base: int, channel_max: int) -> None:
    """Every block, 4x4 up to `resolution`, must get at least one channel."""
    if not isinstance(channel_base, int) or not isinstance(channel_max, int):
        raise ValueError("channel_base and channel_max must be integers, "
                         f"got {channel_base!r} and {channel_max!r}")
    if channel_max < 1:
        raise ValueError(f"channel_max must be >= 1, got {channel_max}")
    if channel_base < resolution:
        raise ValueError(
            f"channel_base {channel_base} gives zero channels at {resolution}x{resolution} "
            f"(channels = channel_base // res); use channel_base >= {resolution}")


def check_network(kind: str, architecture: str, architectures: tuple[str, ...], resolution: int,
                  channel_base: int, channel_max: int) -> None:
    """What G and D both check on construction: a known architecture, a supported resolution and
    channels at every block."""
    if architecture not in architectures:
        raise ValueError(f"unknown {kind} architecture {architecture!r}; use one of {architectures}")
    check_resolution(resolution)
    check_channels(resolution, channel_base, channel_max)
