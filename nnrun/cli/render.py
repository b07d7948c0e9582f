"""Rich tables for what a command reports on stdout: metrics, evaluations, predictions, runs, diffs."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from nnrun.rundir import files as rundir

if TYPE_CHECKING:
    from nnrun.inference.evaluate import Evaluation
    from nnrun.rundir.runs import Diff, RunSummary
    from nnrun.sweep.command import Swept


def metrics_table(metrics: Mapping[str, Mapping[str, float | None]], title: str) -> Table:
    """A table with one row per split (or one row) and one column per metric.

    Per-class values (`f1_score.cat`) stay in the files: their macro average
    stands for them here, so that the table fits a terminal.
    """
    names = list(dict.fromkeys(k for values in metrics.values() for k in values if "." not in k))
    per_class = any("." in k for values in metrics.values() for k in values)
    table = Table("", *names, title=title, caption="per class: metrics.json" if per_class else None)
    columns = [numbers([values.get(n) for values in metrics.values()]) for n in names]
    for i, row in enumerate(metrics):
        table.add_row(row, *(column[i] for column in columns))
    return table


def numbers(values: Sequence[object], digits: int = 4) -> list[str]:
    """Numbers shown side by side (a table's row or column), so that different values never print the same.

    Each float gets `digits` significant digits (`0.9512`, `0.01234`, `12.35`; `1e-05` where that is
    shorter), and more where two different values would otherwise print alike; None is `-`.

    Args:
        values: floats, or anything else (shown as `str` gives it).
        digits: the fewest significant digits.

    Returns:
        The texts, in the order of `values`.
    """
    floats = {v for v in values if isinstance(v, float) and math.isfinite(v)}
    texts = {v: repr(v) for v in floats}  # the shortest text that reads back as the same double
    for shown_digits in range(digits, 17):
        fewer = {v: _significant(v, shown_digits) for v in floats}
        if len(set(fewer.values())) == len(fewer):
            texts = fewer
            break
    return ["-" if v is None else texts[v] if isinstance(v, float) and v in texts else str(v) for v in values]


def _significant(value: float, digits: int, sign: str = "") -> str:
    if value == 0:
        return f"{value:{sign}.{digits}f}"
    exponent = math.floor(math.log10(abs(value)))
    if -3 <= exponent < 15:
        return f"{value:{sign}.{max(digits - 1 - exponent, 0)}f}"
    return f"{value:{sign}.{digits}g}"


def best_trial(swept: Swept) -> str:
    """The line that ends a sweep: its best trial, and how to train its config."""
    from nnrun.sweep import report as sweep_report

    return (
        f"best: trial {swept.trial}, {swept.metric} {swept.value:.4g}, "
        f"{sweep_report.params_text(swept.params)}; train it with: nnrun train {swept.best_config}"
    )


def print_evaluation(result: Evaluation, console: Console | None = None) -> None:
    """Prints an evaluation: metrics, per-class report, confusion matrix, where it was saved."""
    console = console or Console(highlight=False)
    console.print(metrics_table({result.data: result.metrics}, f"{result.samples} samples"))
    report = result.classification_report
    if report and result.class_names is not None and result.confusion_matrix is not None:
        table = Table("class", "precision", "recall", "f1-score", "support", title="classification report")
        for name in [*result.class_names, "macro avg", "weighted avg"]:
            row = report[name]
            table.add_row(
                name, *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1-score")), f"{row['support']:.0f}"
            )
        console.print(table)
        matrix = Table("true \\ predicted", *result.class_names, title="confusion matrix")
        for name, counts in zip(result.class_names, result.confusion_matrix, strict=True):
            matrix.add_row(name, *map(str, counts))
        console.print(matrix)
        console.print(
            f"accuracy {report['accuracy']:.4f}"
            + (f"   ROC AUC {result.roc_auc:.4f}" if result.roc_auc is not None else "")
        )
    regression = result.regression
    if regression:
        table = Table("MAE", "RMSE", "R²", "MAE of predicting the mean", title="regression")
        table.add_row(
            *(
                "-" if regression[k] is None else f"{regression[k]:.4g}"
                for k in ("mae", "rmse", "r2", "mae_of_the_mean")
            )
        )
        console.print(table)
    console.print(f"saved in {result.output_dir}", soft_wrap=True)  # a path cut across lines cannot be pasted


def print_predictions(
    rows: Sequence[dict[str, Any]], run_dir: str | os.PathLike[str], console: Console | None = None
) -> None:
    """Prints predictions: one row per input with its label and probability (or value)."""
    console = console or Console(highlight=False)
    with_top = any("top" in row for row in rows)
    values = all("value" in row for row in rows)  # a regression: no probabilities to show
    with_id = any("id" in r for r in rows)
    table = Table(
        "input",
        *(["id"] if with_id else []),
        "value" if values else "prediction",
        *([] if values else ["probability"]),
        *(["others"] if with_top else []),
        title=f"predictions of {run_dir}",
    )
    for row in rows:
        cells = [row["input"], *([str(row.get("id", ""))] if with_id else [])]
        if "value" in row:
            cells.append(str(row["value"]))
        else:
            cells += [row["label"], f"{row['probability']:.4f}"]
        if with_top:
            cells.append(", ".join(f"{t['class']} {t['probability']:.3f}" for t in row.get("top", [])[1:]))
        table.add_row(*cells)
    console.print(table)


def print_runs(
    summaries: Sequence[RunSummary],
    root: str | os.PathLike[str],
    filtered: bool = False,
    console: Console | None = None,
) -> None:
    """Prints `nnrun runs`: one row per run, newest first, with a hint for unfinished ones."""
    console = console or _wide_console()
    if not summaries:
        sweep = (Path(root) / rundir.SWEEP).is_file()
        console.print(
            f"no runs in {root} match"
            if filtered
            else f"no runs in {root}"
            + (f"; it is a sweep directory: its runs are in {Path(root) / 'trials'}" if sweep else ""),
            markup=False,
        )
        return
    from nnrun.rundir.status import Status

    colours = {
        Status.COMPLETED: "green",
        Status.RUNNING: "cyan",
        Status.FAILED: "red",
        Status.CRASHED: "red",
        Status.INTERRUPTED: "yellow",
    }
    # One metric for all: name it once in the header. The run's folder name
    # already says when it started: on a narrow terminal that column goes.
    metrics = {s.metric for s in summaries if s.test is not None}
    shared = metrics.pop() if len(metrics) == 1 else None
    columns = ["started"] * (console.width >= 100) + ["took", "epochs", f"test {shared}" if shared else "test", "data"]
    table = Table(title=f"runs in {root}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for name in columns:
        table.add_column(name, no_wrap=name != "data", overflow="fold")
    tests = numbers([s.test for s in summaries])
    for s, score in zip(summaries, tests, strict=True):
        test = "-" if s.test is None else score if shared else f"{s.metric} {score}"
        epochs = f"{s.epochs_completed if s.epochs_completed is not None else '?'}/{s.epochs or '?'}"
        started = [(s.started_at or "-").replace("T", " ")[5:16]] * (console.width >= 100)
        table.add_row(
            s.run.rsplit("/", 1)[-1],
            f"[{colours.get(s.status, 'white')}]{s.status}[/]",
            *started,
            _duration(s.duration_s),
            epochs,
            test,
            s.data or "-",
        )
    console.print(table)
    stopped = [s for s in summaries if s.status in (Status.CRASHED, Status.INTERRUPTED) and s.hint]
    for s in stopped[:1]:
        more = f" (and {len(stopped) - 1} more crashed or interrupted runs)" if len(stopped) > 1 else ""
        console.print(f"{s.run} is {s.status}: continue it with: {s.hint}{more}", style="dim", soft_wrap=True)
    retried = [s for s in summaries if s.retried_as_trial]
    for s in retried[:1]:
        more = f" (and {len(retried) - 1} more such trials)" if len(retried) > 1 else ""
        console.print(
            f"{s.run} is {s.status}: its sweep tries its point again as trial {s.retried_as_trial}{more}",
            style="dim",
            soft_wrap=True,
        )


def _wide_console() -> Console:
    """stdout; when it is not a terminal (a pipe, a CI log), tables are not cut to 80 columns."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)


def print_diff(found: Diff, console: Console | None = None) -> None:
    """Prints `nnrun runs diff`: the configs' differing keys, then the metrics side by side."""
    console = console or _wide_console()
    a, b = found.a.rsplit("/", 1)[-1], found.b.rsplit("/", 1)[-1]
    if found.config:
        table = Table("key", a, b, title="config differences")
        for row in found.config:
            table.add_row(row["key"], _value(row["a"]), _value(row["b"]))  # as written: repr tells floats apart
        console.print(table)
    else:
        console.print("the configs are the same")
    if found.metrics or found.status["a"] != found.status["b"]:
        table = Table("metric", a, b, "b - a", title="final metrics")
        table.add_row("status", found.status["a"], found.status["b"], "")
        for row in found.metrics:
            both = all(isinstance(row[k], (int, float)) and not isinstance(row[k], bool) for k in ("a", "b"))
            change = _significant(float(row["b"] - row["a"]), 4, "+") if both else ""
            table.add_row(row["key"], *numbers([row["a"], row["b"]]), change)
        console.print(table)


def _value(value: object) -> str:
    return "-" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
