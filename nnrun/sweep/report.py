"""What a sweep directory shows its user: trials.csv, best.yaml, sweep.png and one line per trial.

Everything here is made from the Optuna study alone, so any process that
holds it (the sweep, its supervisor with `--jobs`, or a sweep on another
machine that shares the study) writes the same files: only where a trial's
run directory is differs, relative to this sweep directory for its own
trials, and in full, on the host the table names, for the others'.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun import atomic
from nnrun.sweep import space as search_space

if TYPE_CHECKING:  # Optuna is imported where used; here for annotations only
    import optuna

    from nnrun.config.schema import Config
    from nnrun.reporter import Reporter

TABLE = "trials.csv"
BEST = "best.yaml"
PLOT = "sweep.png"


def shown(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials a user sees: all but those queued and those a worker asked for past the budget."""
    return [
        t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("skipped") and t.state.name != "WAITING"
    ]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best finished trial, or None before any completed."""
    try:
        return study.best_trial
    except ValueError:
        return None


def write(sweep_dir: Path, config: Config, study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """Writes trials.csv, best.yaml and sweep.png from the study.

    Args:
        sweep_dir: the sweep directory.
        config: the sweep's `Config`.
        study: its Optuna study.

    Returns:
        The best `FrozenTrial`, or None before any trial completed.
    """
    assert config.sweep is not None and config.sweep.direction is not None  # a sweep's, its direction resolved
    trials, best = shown(study), best_trial(study)
    atomic.write_text(sweep_dir / TABLE, _table(trials, config.sweep, sweep_dir))
    if best is not None:
        atomic.write_text(sweep_dir / BEST, best_text(sweep_dir, config, best))
    from nnrun import plots

    plots.sweep(
        _points(trials),
        sweep_dir / PLOT,
        f"{config.output.name}: {config.sweep.metric} over trials",
        config.sweep.metric,
        config.sweep.direction,
    )
    return best


def tell(report: Reporter, sweep_dir: Path, config: Config, study: optuna.Study, number: int) -> None:
    """After a trial: the sweep's files written again from the study, and the trial's progress line printed.

    Args:
        report: the sweep's `Reporter`.
        sweep_dir: the sweep directory.
        config: the sweep's `Config`.
        study: the `optuna.Study`.
        number: the trial's number in the study.
    """
    from nnrun.sweep.study import counted

    write(sweep_dir, config, study)
    report.say(line(study, number, config, counted(study)))


def line(study: optuna.Study, number: int, config: Config, counted: Sequence[optuna.trial.FrozenTrial]) -> str:
    """The progress line of trial `number`: its parameters, its result and the best so far.

    Args:
        study: the Optuna study.
        number: Optuna's trial number (the user's is one more).
        config: the sweep's `Config`.
        counted: the trials that used the budget so far.
    """
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    sweep, best = config.sweep, best_trial(study)
    assert sweep is not None  # a sweep's config
    # Its place among the trials finished so far: with --jobs, two may be reported together.
    done = len(
        [
            t
            for t in counted
            if t.state.is_finished()
            and t.datetime_complete
            and trial.datetime_complete
            and t.datetime_complete <= trial.datetime_complete
        ]
    )
    total = f"{done}/{sweep.trials}" if sweep.trials else f"{done} done"
    if trial.state.name == "COMPLETE":
        result = f"{sweep.metric} {trial.value:.4g}"
    elif trial.state.name == "PRUNED":
        epoch = trial.user_attrs.get("pruned_at_epoch")
        last = trial.intermediate_values.get(epoch) if epoch is not None else None
        result = f"pruned at epoch {epoch}" + (f" ({sweep.metric} {last:.4g})" if last is not None else "")
    elif trial.user_attrs.get("interrupted"):
        result = "interrupted: it runs again when the sweep continues"
    else:
        result = f"failed: {trial.user_attrs.get('error', 'see its run directory')}"
    so_far = f"best {best.value:.4g} (trial {best.number + 1})" if best is not None else "no result yet"
    took = f"  {trial.user_attrs['duration_s']:.0f}s" if "duration_s" in trial.user_attrs else ""
    return f"[{total}] trial {number + 1}  {params_text(trial.params)}  {result}  {so_far}{took}"


def params_text(params: Mapping[str, Any]) -> str:
    """`optimizer.learning_rate=0.0031 model.layers.0.Dense.units=64`."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def best_text(sweep_dir: Path, config: Config, best: optuna.trial.FrozenTrial) -> str:
    """best.yaml: the sweep's config with the best trial's values, without its sweep section."""
    from nnrun.config import loading as config_lib

    assert config.sweep is not None  # a sweep's config
    trained = search_space.apply(config, best.params, str(sweep_dir / BEST))

    # From the study, which other machines write to: one safe line.
    made_from = re.sub(r"[^\w./:-]", "_", run_path(best, sweep_dir))
    header = (
        f"# The best trial of the sweep {sweep_dir.name}: trial {best.number + 1}, "
        f"{config.sweep.metric} {best.value:.6g} ({made_from}).\n"
        f"# Train it with: nnrun train {sweep_dir / BEST}\n"
    )
    return header + config_lib.dump(trained)


def run_path(trial: optuna.trial.FrozenTrial, sweep_dir: Path) -> str:
    """Where a trial's run directory is: from this sweep directory for its own trials, else in full on its host.

    Args:
        trial: a trial of the study.
        sweep_dir: this sweep directory.

    Returns:
        The path as trials.csv shows it; "" when the trial began no run.
    """
    run_dir = trial.user_attrs.get("run_dir")
    if not isinstance(run_dir, str):
        return ""
    ran_in = trial.user_attrs.get("sweep_dir")  # a trial of a shared study: the sweep directory that ran it
    if not isinstance(ran_in, str) or ran_in == str(sweep_dir.resolve()):
        return run_dir
    return str(Path(ran_in) / run_dir)


def host(trial: optuna.trial.FrozenTrial) -> str:
    """The host whose sweep ran a trial ("" for a trial queued and never run)."""
    process = trial.user_attrs.get("process")
    return str(process.get("host", "")) if isinstance(process, dict) else ""


def _table(trials, sweep, sweep_dir):
    names = list(sweep.parameters)
    tests = sorted({k for t in trials for k in t.user_attrs if k.startswith("test_")})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["trial", "state", sweep.metric, *names, "pruned_at_epoch", *tests, "duration_s", "host", "run_dir", "error"]
    )
    for t in trials:
        state = "interrupted" if t.user_attrs.get("interrupted") else t.state.name.lower()
        writer.writerow(
            [
                t.number + 1,
                state,
                "" if t.value is None else t.value,
                *(t.params.get(n, "") for n in names),
                t.user_attrs.get("pruned_at_epoch", ""),
                *(t.user_attrs.get(k, "") for k in tests),
                t.user_attrs.get("duration_s", ""),
                host(t),
                run_path(t, sweep_dir),
                t.user_attrs.get("error", ""),
            ]
        )
    return out.getvalue()


def _points(trials):
    """(trial number, value, state) for the plot: a pruned trial at its last reported value."""
    points = []
    for t in trials:
        value = t.value
        if t.state.name == "PRUNED" and t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        if value is not None and math.isfinite(value):
            points.append((t.number, value, t.state.name.lower()))
    return points
