"""The sweep end to end with real trials: stylejax.main on the tests' tiny config, one trial that
trains and is scored by fid_digits, one that stops at once with stylejax.main's own error."""

import csv
import json

from tests.scripts.sweep_helpers import run_sweep


def test_sweep_of_real_training_runs(tmp_path):
    overrides = {"num_train_steps": 2, "metrics": ("fid_digits",), "metrics_num_samples": 32,
                 "metrics_batch_size": 32, "data_dir": str(tmp_path / "data"),
                 "metrics_cache_dir": str(tmp_path / "cache")}
    sweep = tmp_path / "tiny.py"
    sweep.write_text(
        "def get_sweep():\n"
        "    return dict(config='tests/scripts/tiny_run.py', objective=('fid_digits', 'minimize'),\n"
        "                space={'dataset': ['digits16', 'no_such_dataset']},\n"
        f"                overrides={overrides!r})\n")
    root = tmp_path / "root"
    result = run_sweep(str(sweep), root, "--parallel", "2", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(root / "results.csv") as f:
        trained, missing = csv.DictReader(f)
    run = root / "trial_0000"
    assert json.loads((run / "config.json").read_text())["num_train_steps"] == 2
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 2
    assert (trained["status"], float(trained["fid_digits"]), trained["best"]) == (
        "done", last["fid_digits"], "yes")
    assert missing["status"] == "failed"
    assert missing["error"].startswith("error: dataset 'no_such_dataset' is not prepared")
    assert missing["error"].endswith("(exit status 2)")
