"""Rich tables for what a command reports on stdout: metrics, evaluations, predictions."""

from rich.console import Console
from rich.table import Table


def metrics_table(metrics, title):
    """A table with one row per split (or one row) and one column per metric."""
    names = list(dict.fromkeys(k for values in metrics.values() for k in values))
    table = Table("", *names, title=title)
    for row, values in metrics.items():
        table.add_row(row, *("-" if values.get(n) is None else f"{values[n]:.4f}" for n in names))
    return table


def print_evaluation(result, console=None):
    """Prints an evaluation: metrics, per-class report, confusion matrix, where it was saved."""
    console = console or Console(highlight=False)
    console.print(metrics_table({result["data"]: result["metrics"]}, f"{result['samples']} samples"))
    report = result.get("classification_report")
    if report:
        table = Table("class", "precision", "recall", "f1-score", "support", title="classification report")
        for name in [*result["class_names"], "macro avg", "weighted avg"]:
            row = report[name]
            table.add_row(name, *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1-score")), f"{row['support']:.0f}")
        console.print(table)
        matrix = Table("true \\ predicted", *result["class_names"], title="confusion matrix")
        for name, counts in zip(result["class_names"], result["confusion_matrix"]):
            matrix.add_row(name, *map(str, counts))
        console.print(matrix)
        console.print(f"accuracy {report['accuracy']:.4f}" + (
            f"   ROC AUC {result['roc_auc']:.4f}" if result.get("roc_auc") is not None else ""))
    console.print(f"saved in {result['output_dir']}")


def print_predictions(rows, run_dir, console=None):
    """Prints predictions: one row per input with its label and probability (or value)."""
    console = console or Console(highlight=False)
    with_top = any("top" in row for row in rows)
    table = Table("input", *(["id"] if any("id" in r for r in rows) else []), "prediction", "probability",
                  *(["others"] if with_top else []), title=f"predictions of {run_dir}")
    for row in rows:
        cells = [row["input"], *([str(row.get("id", ""))] if "id" in table.columns[1].header else [])]
        if "value" in row:
            cells += [str(row["value"]), "-"]
        else:
            cells += [row["label"], f"{row['probability']:.4f}"]
        if with_top:
            cells.append(", ".join(f"{t['class']} {t['probability']:.3f}" for t in row.get("top", [])[1:]))
        table.add_row(*cells)
    console.print(table)
