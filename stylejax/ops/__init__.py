"""Machine-specific variants of the networks' operations, each numerically the reference in
stylejax.models and chosen by config (model.impl; stylejax.networks resolves it)."""
