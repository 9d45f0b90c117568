"""Hyperparameter sweeps over `stylejax.main` runs, searched and coordinated by Optuna.

Modules: `definition` (sweep files: the space, the objective, the budget), `checks` (a sweep
against its experiment config, before any trial starts), `locks` (file locks that tell a live
trial from one whose worker died), `study` (the Optuna study: the queue of trials, claiming and
requeueing them), `process` (one trial as a `stylejax.main` subprocess and its objective),
`results` (the table and the plot), `worker` (the loop `python -m stylejax.sweep` runs) and
`errors`.
"""
