"""Benchmark: each tutorial workflow trained by nnrun and by its plain Keras script.

    cp -r ../shared/data/keras /tmp/keras_home
    KERAS_HOME=/tmp/keras_home .venv/bin/python bench/run.py [--seeds 1-5] [--only mnist,fashion,churn,cifar10]
        [--backends tensorflow,jax] [--epochs N]

For each workflow and each seed (a repeat), the plain script (on TensorFlow, as
the tutorial wrote it) and `nnrun train` on each backend asked for run one after
the other with that seed (script, nnrun tensorflow, nnrun jax, script, ...), so
the noise of a shared machine falls on all alike. Each is a fresh process, timed
by the wall clock from its start to its exit: all pay their imports. The first
table shows the median test accuracy of each over the seeds, their median wall
times and the median of the per-seed ratios nnrun/script, one row per backend;
nnrun must be no slower (ratio <= 1.0). The last shows the accuracies seed by
seed, paired (accuracy.py).

Exit codes: 0 every ratio <= 1.0; 1 a run failed (its stderr is shown);
2 bad arguments or missing data; 3 nnrun was slower on some workflow.
Run by hand, never in CI: the numbers only compare within one run.
"""

import argparse
import datetime
import os
import statistics
import sys
from pathlib import Path

import yaml
from accuracy import parse_seeds, per_seed
from machine import code_line, machine_line, matmul_peak, throughput
from rich.console import Console
from rich.table import Table
from workflows import CHURN_CSV, NNRUN, ROOT, WORKFLOWS, Failed, ratio_table, select, train_pairs, warm_up


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, help="N: the same as --seeds 1-N")
    parser.add_argument(
        "--only",
        default=",".join(w.name for w in WORKFLOWS),
        help="comma-separated workflows: " + ",".join(w.name for w in WORKFLOWS),
    )
    parser.add_argument("--epochs", type=int, help="override the epochs on both sides (a quick smoke run)")
    parser.add_argument(
        "--backends", default="auto", help="comma-separated nnrun backends: auto (the default's choice),tensorflow,jax"
    )
    parser.add_argument(
        "--seeds",
        help="the seeds, one run of each side per seed: a range 1-5, a list 1,2,42, or both (default 1-3); "
        "the accuracies are medians over them, since one seed's accuracy is noise at half a point",
    )
    parser.add_argument("--churn-csv", type=Path, default=CHURN_CSV, help=f"the churn table (default {CHURN_CSV})")
    args = parser.parse_args()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, width=max(Console().width, 120))

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"auto", "tensorflow", "jax"}:
        parser.error(f"--backends: auto, tensorflow and/or jax; got {args.backends!r}")
    if args.seeds and args.repeat is not None:
        parser.error("--seeds or --repeat, not both")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat: at least 1; got {args.repeat}")
    try:
        seeds = parse_seeds(args.seeds or f"1-{args.repeat or 3}")
    except ValueError:
        parser.error(f"--seeds: integers and ranges such as 1-5, comma-separated; got {args.seeds!r}")
    unknown = [n for n in names if n not in {w.name for w in WORKFLOWS}]
    if unknown or not names or (args.epochs is not None and args.epochs < 1):
        parser.error(f"unknown workflow {unknown[0]!r}" if unknown else "nothing to run")
    keras_home = os.environ.get("KERAS_HOME")
    if not keras_home:
        err.print(
            "KERAS_HOME is not set: copy the shared cache first and point at it, e.g.\n"
            "  cp -r ../shared/data/keras /tmp/keras_home\n"
            "  KERAS_HOME=/tmp/keras_home .venv/bin/python bench/run.py"
        )
        return 2
    datasets = Path(keras_home) / "datasets"
    csv = args.churn_csv.resolve()
    if not NNRUN.exists():
        err.print(f"no nnrun next to {sys.executable}: run this with the project's venv (.venv/bin/python)")
        return 2

    selected, skipped = select(names, datasets, keras_home, csv)
    for line in skipped:
        err.print(line, style="yellow")
    if not selected:
        err.print("nothing to run: every workflow asked for was skipped")
        return 2

    started = datetime.datetime.now().astimezone()
    machine = machine_line()
    code = code_line(keras_home)
    load_before = os.getloadavg()
    err.print(f"{started:%Y-%m-%d %H:%M:%S %Z}  {machine}  load average {load_before[0]:.2f}")
    err.print(code)
    peak = matmul_peak()
    err.print(f"NumPy float32 matmul peak: {peak:.0f} GFLOP/s")
    warm_up(keras_home)  # the first process to import TensorFlow reads it from disk: take that off the timings

    shipped = {w.name: yaml.safe_load((ROOT / "configs" / w.config).read_text())["seed"] for w in selected}
    try:
        train_pairs(selected, seeds, backends, args.epochs, keras_home, csv, err)
    except Failed as e:
        err.print("[bold red]FAILED[/]:", end=" ")
        err.print(str(e), markup=False)
        return 1

    load_after = os.getloadavg()
    if code_line(keras_home) != code:
        err.print("[bold yellow]warning[/]:", end=" ")
        err.print(f"the nnrun measured changed during the run: now {code_line(keras_home)}", markup=False)
    out.print(
        f"\nnnrun vs the plain Keras scripts: {started:%Y-%m-%d %H:%M %Z}, "
        f"{len(seeds)} seed{'s' * (len(seeds) != 1)} ({', '.join(map(str, seeds))})"
        + (f", epochs overridden to {args.epochs}" if args.epochs else "")
    )
    out.print(f"machine: {machine}")
    out.print(code)
    out.print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    table, slower = ratio_table(selected, backends, skipped)
    out.print(table)

    detail = Table(
        "workflow",
        "backend",
        "script fit",
        "script rest",
        "nnrun run.json duration",
        "nnrun rest",
        title="fit vs the rest (medians, s); rest: import, data, evaluation, plots, saving",
    )
    for w in selected:
        for backend in backends:
            runs = [run for run in w.runs if run["backend"] == backend]
            detail.add_row(
                w.name,
                backend,
                f"{statistics.median(run['script']['fit'] for run in runs):.1f}",
                f"{statistics.median(run['script']['wall'] - run['script']['fit'] for run in runs):.1f}",
                f"{statistics.median(run['nnrun']['duration'] for run in runs):.1f}",
                f"{statistics.median(run['nnrun']['wall'] - run['nnrun']['duration'] for run in runs):.1f}",
            )
    out.print(detail)
    out.print(per_seed(selected, backends, shipped))
    out.print(
        "per-seed wall s (seed: script / nnrun backend): "
        + "; ".join(
            f"{w.name} "
            + ", ".join(
                f"{run['seed']}: {run['script']['wall']:.1f}/{run['nnrun']['wall']:.1f} {run['backend']}"
                for run in w.runs
            )
            for w in selected
        )
    )
    for line in skipped:
        out.print(line)
    mnist = next((w for w in selected if w.name == "mnist"), None)
    if mnist:
        out.print(throughput(mnist, backends, peak))
    return 3 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
