"""ADA's p (and fid_digits, where evaluated) over the steps of training runs, as one PNG.

    python benchmarks/plot_ada.py --out ada_p.png runs/ada200 runs/noaug200

Reads each workdir's TensorBoard scalars (`ada_p`, `ada_rt`, the first metric) and prints them.
"""

import argparse
import glob
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


def scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar a run logged."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
        events = EventAccumulator(path, size_guidance={"tensors": 0, "scalars": 0})
        events.Reload()
        for tag in events.Tags()["tensors"]:
            for event in events.Tensors(tag):
                value = tensor_util.make_ndarray(event.tensor_proto)
                if value.ndim == 0 and value.dtype.kind == "f":  # not the images or hparams
                    found.setdefault(tag, []).append((event.step, float(value)))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--out", default="ada_p.png")
    parser.add_argument("--metric", default="metrics/fid_digits")
    args = parser.parse_args()
    fig, (p_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for workdir in args.workdirs:
        runs = scalars(workdir)
        name = os.path.basename(os.path.normpath(workdir))
        for tag, axis in (("ada_p", p_axis), (args.metric, metric_axis)):
            if tag in runs:
                steps, values = zip(*sorted(runs[tag]), strict=True)
                axis.plot(steps, values, marker="o" if tag == args.metric else None, label=name)
                print(name, tag, " ".join(f"{s}:{v:.4g}" for s, v in zip(steps, values, strict=True)))
    p_axis.set(xlabel="step", ylabel="p", title="augmentation probability")
    metric_axis.set(xlabel="step", ylabel=args.metric, title=args.metric)
    for axis in (p_axis, metric_axis):
        axis.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
