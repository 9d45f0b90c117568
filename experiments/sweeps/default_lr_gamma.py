"""Learning rate and R1 gamma of the default experiment: a 3 x 2 grid of short runs, offline on CPU.

    python -m stylejax.sweep --sweep experiments/sweeps/default_lr_gamma.py --root runs/lr_gamma --parallel 2

Each trial is experiments/default.py cut down to 400 steps of batch 16 with 32 channels and a
128-wide mapping, scored once at the end by fid_digits on 500 samples: on 2 CPU cores most of a
trial is compilation, so the steps are cheap. Short runs favour large learning rates; read the
result as which settings learn fastest, not which end best.
"""


def get_sweep():
    return dict(
        config="experiments/default.py",
        method="grid",
        space={
            "optim.g_lr,optim.d_lr": [0.0025, 0.005, 0.01],  # one rate for G and D
            "loss.r1_gamma": [0.01, 0.1],
        },
        objective=("fid_digits", "minimize"),
        overrides={
            "num_train_steps": 400,
            "batch_size": 16,
            "model.channel_max": 32,
            "model.z_dim": 128,
            "model.w_dim": 128,
            "log_every_steps": 100,
            "checkpoint_every_steps": 100,
            "sample_every_steps": 0,
            "eval_every_steps": 0,  # the last step is always evaluated
            "metrics": ("fid_digits",),
            "metrics_num_samples": 500,
        },
        seed=0,
    )
