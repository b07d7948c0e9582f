"""Issue 25's acceptance in one run: check's wall time, the default backend against the tutorial scripts, cold predict.

    cp -r ../shared/data/keras /tmp/keras_home
    KERAS_HOME=/tmp/keras_home .venv/bin/python bench/speed.py [--seeds 1-3] [--only mnist,fashion,churn,cifar10]
        [--backends auto] [--churn-csv PATH] [--repeat 3] [--work DIR]

1. `nnrun check` on configs/quickstart.yaml and configs/mnist_mlp.yaml, whole
   processes, median of `--repeat` (goal: under 1 s).
2. Each tutorial workflow (bench/workflows.py) trained by its plain script and
   by `nnrun train` with no backend named (`--backends auto`: what `backend:
   auto` picks), paired seed by seed: test accuracies and the median wall-time
   ratio nnrun/script (goal: MNIST at most 0.75, the others at most 1.0); and
   the MNIST fit's GFLOP/s against NumPy's float32 matmul peak, measured here.
3. A cold `nnrun predict` of one CSV row and one image through an ONNX export
   and through Keras (bench/predict_row.py), median of `--repeat` (goal: ONNX
   under 0.6 s and 150 MB).

Exit codes: 0 every goal met; 1 a process failed; 2 bad arguments or missing
data; 3 a goal missed. Run by hand, never in CI: only figures of one run
compare, on a machine as quiet as can be had (the load average is printed).
"""

import argparse
import datetime
import os
import statistics
import sys
import tempfile
from pathlib import Path

from accuracy import parse_seeds
from machine import code_line, machine_line, matmul_peak, throughput
from predict_row import cold_predictions, prepare
from rich.console import Console
from rich.table import Table
from workflows import CHURN_CSV, NNRUN, ROOT, WORKFLOWS, Failed, ratio_table, select, timed, train_pairs, warm_up

CHECKED = ("quickstart.yaml", "mnist_mlp.yaml")
GOALS = {"check_s": 1.0, "mnist": 0.75, "other": 1.0, "predict_s": 0.6, "predict_mb": 150}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-3", help="one training of each side per seed: 1-3, 1,2,42 (default 1-3)")
    parser.add_argument("--only", default=",".join(w.name for w in WORKFLOWS), help="the workflows to train")
    parser.add_argument("--backends", default="auto", help="nnrun's backends to pair with the scripts (default auto)")
    parser.add_argument("--churn-csv", type=Path, default=CHURN_CSV)
    parser.add_argument("--repeat", type=int, default=3, help="processes per check and per predict timing")
    parser.add_argument("--work", type=Path, help="where the predict runs are made (default: a temporary folder)")
    args = parser.parse_args()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, width=max(Console().width, 120))
    keras_home = os.environ.get("KERAS_HOME")
    if not keras_home or not NNRUN.exists():
        err.print("set KERAS_HOME to a copy of the Keras cache, and run with the project's venv (see bench/README.md)")
        return 2
    seeds = parse_seeds(args.seeds)
    backends = [b for b in args.backends.split(",") if b]
    csv = args.churn_csv.resolve()
    selected, skipped = select([n for n in args.only.split(",") if n], Path(keras_home) / "datasets", keras_home, csv)
    for line in skipped:
        err.print(line, style="yellow")

    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()[0]
    out.print(f"{started:%Y-%m-%d %H:%M %Z}  {machine_line()}")
    out.print(code_line(keras_home))
    peak = matmul_peak()
    out.print(f"NumPy float32 matmul peak: {peak:.0f} GFLOP/s; load average (1 min) before: {load_before:.2f}")
    warm_up(keras_home)
    missed = []
    try:
        checks = Table("config", "nnrun check wall s (median)", "runs", "goal < 1 s", title="nnrun check")
        for name in CHECKED:
            walls = [
                timed([str(NNRUN), "check", str(ROOT / "configs" / name)], keras_home)[0] for _ in range(args.repeat)
            ]
            median = statistics.median(walls)
            missed += [f"check {name}"] * (median >= GOALS["check_s"])
            checks.add_row(name, f"{median:.2f}", ", ".join(f"{w:.2f}" for w in walls), _verdict(median < 1))
        out.print(checks)

        if selected:
            train_pairs(selected, seeds, backends, None, keras_home, csv, err)
            table, _ = ratio_table(selected, backends, skipped)
            out.print(table)
            for w in selected:
                for backend in backends:
                    ratio = statistics.median(r["ratio"] for r in w.runs if r["backend"] == backend)
                    if ratio > GOALS["mnist" if w.name == "mnist" else "other"]:
                        missed.append(f"{w.name} on {backend}: ratio {ratio:.3f}")
            mnist = next((w for w in selected if w.name == "mnist"), None)
            if mnist:
                out.print(throughput(mnist, backends, peak))

        with tempfile.TemporaryDirectory(prefix="nnrun-speed-") as tmp:
            work = (args.work or Path(tmp)).resolve()
            work.mkdir(parents=True, exist_ok=True)
            predicts = Table("what", "runtime", "wall s (median)", "peak RSS MB", "exit codes", "goal", title="predict")
            for what, runtime, wall, rss, codes in cold_predictions(prepare(work, csv), work, args.repeat):
                met = wall < GOALS["predict_s"] and rss < GOALS["predict_mb"] if runtime == "onnx" else None
                missed += [f"{what} through {runtime}"] * (met is False)
                predicts.add_row(what, runtime, f"{wall:.2f}", f"{rss:.0f}", str(codes), _verdict(met))
            out.print(predicts)
    except Failed as e:
        err.print("[bold red]FAILED[/]:", end=" ")
        err.print(str(e), markup=False)
        return 1
    out.print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    out.print("goals missed: " + ("; ".join(missed) if missed else "none"))
    return 3 if missed else 0


def _verdict(met):
    return "-" if met is None else "ok" if met else "[bold red]missed[/]"


if __name__ == "__main__":
    sys.exit(main())
