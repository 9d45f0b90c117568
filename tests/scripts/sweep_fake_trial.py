"""A stand-in for `python -m stylejax.main` in the sweep tests: seconds instead of minutes, and an
objective known in advance.

Takes --config FILE --workdir DIR --config.KEY=VALUE ... and runs config.num_train_steps steps of
$SWEEP_FAKE_STEP_S seconds (default 0.1), saving its step in WORKDIR/step after each (its
checkpoint) and resuming from there. SIGTERM saves and exits 143, as stylejax.main does. Each run
appends 'start STEP' and, when it finishes, 'end' to WORKDIR/events. Finished, it writes
metrics.jsonl: fid_digits = |log10(g_lr / 0.002)| + r1_gamma at the last step (and a worse value
at an earlier step). A g_lr above 0.05 fails like a diverged run: an 'error:' line, exit 2.
"""

import json
import math
import os
import signal
import sys
import time


def main(argv: list[str]) -> int:
    values = dict(arg[len("--config."):].split("=", 1) for arg in argv if arg.startswith("--config."))
    workdir = argv[argv.index("--workdir") + 1]
    g_lr = float(values.get("optim.g_lr", 0.0025))
    gamma = float(values.get("loss.r1_gamma", 1.0))
    steps = int(values.get("num_train_steps", 10))
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    os.makedirs(workdir, exist_ok=True)
    step_file = os.path.join(workdir, "step")
    step = int(open(step_file).read()) if os.path.exists(step_file) else 0
    with open(os.path.join(workdir, "events"), "a") as f:
        f.write(f"start {step}\n")
    if g_lr > 0.05:
        print("error: training diverged: 20 non-finite steps in a row", file=sys.stderr)
        return 2
    while step < steps:
        time.sleep(float(os.environ.get("SWEEP_FAKE_STEP_S", "0.1")))
        step += 1
        with open(step_file + ".tmp", "w") as f:
            f.write(str(step))
        os.replace(step_file + ".tmp", step_file)
        if stop:
            print(f"stopped at step {step}, checkpoint saved", file=sys.stderr)
            return 143
    objective = abs(math.log10(g_lr / 0.002)) + gamma
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": steps // 2, "fid_digits": objective + 100}) + "\n")
        f.write(json.dumps({"step": steps, "fid_digits": objective}) + "\n")
    with open(os.path.join(workdir, "events"), "a") as f:
        f.write("end\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
