"""The sweep's results in ROOT: results.md and results.csv (one row per trial: its parameters,
status, objective, wall time, attempts, workdir, command and error) and results.png (the
objective against each swept value, the best trial marked).

A trial's wall time sums its attempts as timed by their workers; an attempt whose worker was
killed could not be timed and is left out.

Rewritten from the study whenever a trial ends, by whichever worker ended it (atomically, so
readers and other workers never see half a file).
"""

import csv
import datetime
import io
import os

import optuna
from matplotlib.figure import Figure
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from stylejax.files import write_atomically
from stylejax.sweeps.definition import Sweep
from stylejax.sweeps.study import ERROR, SECONDS, attempts_by_slot, interrupted, trial_workdir

_STATUS = {TrialState.COMPLETE: "done", TrialState.RUNNING: "running",
           TrialState.WAITING: "pending"}


def _trial_rows(study: optuna.Study, sweep: Sweep, root: str) -> list[dict]:
    """One dict per trial of the sweep, from its attempts in the study."""
    now = datetime.datetime.now()
    grid = sweep.grid() if sweep.method == "grid" else None
    rows = []
    for slot, attempts in attempts_by_slot(study.get_trials(deepcopy=False)).items():
        last = attempts[-1]
        params = next((a.params for a in reversed(attempts) if a.params),
                      grid[slot] if grid else {})
        workdir = trial_workdir(root, slot)
        rows.append({
            "trial": slot,
            "status": ("interrupted" if interrupted(last) else
                       "failed" if last.state == TrialState.FAIL else _STATUS[last.state]),
            "params": params,
            "objective": last.value if last.state == TrialState.COMPLETE else None,
            "wall_s": sum(a.user_attrs.get(SECONDS, 0.0) for a in attempts) + (
                (now - last.datetime_start).total_seconds() if last.state == TrialState.RUNNING
                else 0.0),
            "attempts": sum(a.datetime_start is not None for a in attempts),
            "workdir": workdir,
            "command": " ".join(sweep.command_line(params, workdir)) if params else "",
            "error": last.user_attrs.get(ERROR, ""),
        })
    return rows


def _best_row(rows: list[dict], sweep: Sweep) -> dict | None:
    done = [r for r in rows if r["objective"] is not None]
    if not done:
        return None
    pick = min if sweep.direction == "minimize" else max
    return pick(done, key=lambda r: r["objective"])


def write_results(study: optuna.Study, sweep: Sweep, root: str) -> dict | None:
    """Writes results.md, results.csv and results.png; returns the best trial's row."""
    rows = _trial_rows(study, sweep, root)
    best = _best_row(rows, sweep)
    csv_text = _csv(rows, sweep, best)
    write_atomically(os.path.join(root, "results.csv"), lambda f: f.write(csv_text.encode()))
    markdown = _markdown(rows, sweep, best)
    write_atomically(os.path.join(root, "results.md"), lambda f: f.write(markdown.encode()))
    figure = _plot(rows, sweep, best)
    write_atomically(os.path.join(root, "results.png"),
                     lambda f: figure.savefig(f, format="png", dpi=100))
    return best


def _csv(rows: list[dict], sweep: Sweep, best: dict | None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "status", *sweep.space, sweep.metric, "best", "wall_s", "attempts",
                     "workdir", "command", "error"])
    for r in rows:
        writer.writerow([r["trial"], r["status"], *(r["params"].get(n, "") for n in sweep.space),
                         "" if r["objective"] is None else repr(r["objective"]),
                         "yes" if r is best else "", f"{r['wall_s']:.1f}", r["attempts"],
                         r["workdir"], r["command"], r["error"]])
    return out.getvalue()


def _markdown(rows: list[dict], sweep: Sweep, best: dict | None) -> str:
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    lines = [f"# Sweep {sweep.name}", "",
             f"{sweep.method} search over {sweep.config}; objective {sweep.metric} "
             f"({sweep.direction}); {done} of {len(rows)} trials done, {failed} failed.", ""]
    if best is not None:
        setting = ", ".join(f"{n}={_short(v)}" for n, v in best["params"].items())
        lines += [f"Best: trial {best['trial']}, {sweep.metric} {_short(best['objective'])} "
                  f"({setting}).", ""]
    lines += ["| trial | status | " + " | ".join(sweep.space) + f" | {sweep.metric} "
              "| wall (s) | attempts | workdir | error |",
              "|" + "---|" * (len(sweep.space) + 7)]
    for r in rows:
        cells = [f"**{r['trial']}** (best)" if r is best else str(r["trial"]), r["status"],
                 *(_short(r["params"].get(n, "")) for n in sweep.space),
                 _short(r["objective"]), f"{r['wall_s']:.0f}", str(r["attempts"]),
                 os.path.basename(r["workdir"]), r["error"].replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _short(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plot(rows: list[dict], sweep: Sweep, best: dict | None) -> Figure:
    names = list(sweep.space)
    done = [r for r in rows if r["objective"] is not None]
    fig = Figure(figsize=(4.2 * len(names), 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        xs = [r["params"][name] for r in done]
        ys = [r["objective"] for r in done]
        distribution = sweep.space[name]
        categorical = isinstance(distribution, CategoricalDistribution) and any(
            isinstance(c, str | bool) for c in distribution.choices)
        if categorical:
            xs = [str(x) for x in xs]
        ax.scatter(xs, ys, color="tab:blue", zorder=2)
        for r, x, y in zip(done, xs, ys, strict=True):
            ax.annotate(str(r["trial"]), (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
        failed = [r["params"][name] for r in rows if r["status"] == "failed" and r["params"]]
        if failed:  # no objective: marked along the top edge
            ax.plot([str(x) for x in failed] if categorical else failed, [0.97] * len(failed),
                    linestyle="none", marker="x", color="tab:gray", label="failed",
                    transform=ax.get_xaxis_transform())
        if best is not None:
            x = best["params"][name]
            ax.scatter([str(x) if categorical else x], [best["objective"]], color="tab:red",
                       marker="*", s=220, zorder=3, label=f"best (trial {best['trial']})")
        if failed or best is not None:
            ax.legend(fontsize=8)
        if not categorical and _log_axis(distribution):
            ax.set_xscale("log")
        ax.set_xlabel(" = ".join(name.split(",")))
        ax.set_ylabel(sweep.metric)
        ax.grid(True, alpha=0.3)
    better = "lower" if sweep.direction == "minimize" else "higher"
    fig.suptitle(f"{sweep.name}: {sweep.metric} ({better} is better), {len(done)} of {len(rows)} "
                 "trials done")
    return fig


def _log_axis(distribution: BaseDistribution) -> bool:
    """Log-scaled ranges, and lists of positive numbers spanning a factor of ten or more."""
    if not isinstance(distribution, CategoricalDistribution):
        return distribution.log
    xs = distribution.choices
    return min(xs) > 0 and max(xs) / min(xs) >= 10
