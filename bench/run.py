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
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from accuracy import parse_seeds, per_seed, spread
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CHURN_CSV = (ROOT / ".." / "shared" / "data" / "churn" / "Churn_Modelling.csv").resolve()
NNRUN = Path(sys.executable).with_name("nnrun")


@dataclass
class Workflow:
    name: str  # what --only takes
    config: str  # under configs/
    script: str  # under bench/
    dataset: str | None = None  # the folder or file under <KERAS_HOME>/datasets it needs
    csv: bool = False  # reads the churn CSV: the script's argv[1], nnrun's data.path
    runs: list = field(default_factory=list)  # one dict per seed and backend


WORKFLOWS = [
    Workflow("mnist", "mnist_mlp.yaml", "mnist_mlp.py", dataset="mnist.npz"),
    Workflow("fashion", "fashion_mnist_mlp.yaml", "fashion_mnist_mlp.py", dataset="fashion-mnist"),
    Workflow("churn", "churn_ann.yaml", "churn_ann.py", csv=True),
    # Keras 3 reads CIFAR-10 from the archive it downloaded (and extracts it again on every load);
    # Keras 2's extracted folder, cifar-10-batches-py, is not enough.
    Workflow("cifar10", "cifar10_cnn.yaml", "cifar10_cnn.py", dataset="cifar-10-batches-py-target_archive"),
]


class Failed(Exception):
    """A benchmarked process failed; the message holds its command and output tail."""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, help="N: the same as --seeds 1-N")
    parser.add_argument(
        "--only",
        default=",".join(w.name for w in WORKFLOWS),
        help="comma-separated workflows: " + ",".join(w.name for w in WORKFLOWS),
    )
    parser.add_argument("--epochs", type=int, help="override the epochs on both sides (a quick smoke run)")
    parser.add_argument("--backends", default="tensorflow", help="comma-separated nnrun backends: tensorflow,jax")
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
    if not backends or set(backends) - {"tensorflow", "jax"}:
        parser.error(f"--backends: tensorflow and/or jax; got {args.backends!r}")
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

    selected, skipped = [], []
    for w in (w for w in WORKFLOWS if w.name in names):
        if w.dataset and not (datasets / w.dataset).exists():
            skipped.append(
                f"{w.name}: skipped, {datasets / w.dataset} is missing (not in the Keras cache at {keras_home})"
            )
        elif not (ROOT / "configs" / w.config).exists():
            skipped.append(f"{w.name}: skipped, configs/{w.config} does not exist yet")
        elif w.csv and not csv.exists():
            skipped.append(f"{w.name}: skipped, {csv} is missing (--churn-csv)")
        else:
            selected.append(w)
    for line in skipped:
        err.print(line, style="yellow")
    if not selected:
        err.print("nothing to run: every workflow asked for was skipped")
        return 2

    started = datetime.datetime.now().astimezone()
    machine = _machine()
    code = _code(keras_home)
    load_before = os.getloadavg()
    err.print(f"{started:%Y-%m-%d %H:%M:%S %Z}  {machine}  load average {load_before[0]:.2f}")
    err.print(code)
    peak = _matmul_peak()
    err.print(f"NumPy float32 matmul peak: {peak:.0f} GFLOP/s")
    _warm_up(keras_home)  # the first process to import TensorFlow reads it from disk: take that off the timings

    shipped = {w.name: yaml.safe_load((ROOT / "configs" / w.config).read_text())["seed"] for w in selected}
    try:
        for w in selected:
            for r, seed in enumerate(seeds):
                script = _script(w, seed, args.epochs, keras_home, csv)
                line = f"{w.name} {r + 1}/{len(seeds)} seed {seed}: "
                line += f"script {script['wall']:.1f} s (acc {script['accuracy']:.4f})"
                for backend in backends:
                    nnrun = _nnrun(w, args.epochs, keras_home, csv, backend, seed)
                    w.runs.append(
                        {
                            "seed": seed,
                            "backend": backend,
                            "script": script,
                            "nnrun": nnrun,
                            "ratio": nnrun["wall"] / script["wall"],
                        }
                    )
                    line += f", nnrun {backend} {nnrun['wall']:.1f} s (acc {nnrun['accuracy']:.4f})"
                    line += f", ratio {w.runs[-1]['ratio']:.3f}"
                err.print(line)
    except Failed as e:
        err.print("[bold red]FAILED[/]:", end=" ")
        err.print(str(e), markup=False)
        return 1

    load_after = os.getloadavg()
    if _code(keras_home) != code:
        err.print("[bold yellow]warning[/]:", end=" ")
        err.print(f"the nnrun measured changed during the run: now {_code(keras_home)}", markup=False)
    out.print(
        f"\nnnrun vs the plain Keras scripts: {started:%Y-%m-%d %H:%M %Z}, "
        f"{len(seeds)} seed{'s' * (len(seeds) != 1)} ({', '.join(map(str, seeds))})"
        + (f", epochs overridden to {args.epochs}" if args.epochs else "")
    )
    out.print(f"machine: {machine}")
    out.print(code)
    out.print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    table = Table(
        "workflow",
        "backend",
        "script acc",
        "nnrun acc",
        "script wall s",
        "nnrun wall s",
        "ratio nnrun/script",
        "verdict",
        title="test accuracy (median over the seeds, and range), wall time (median), ratio (median of per-seed ratios)",
    )
    slower = False
    for w in selected:
        for backend in backends:
            runs = [run for run in w.runs if run["backend"] == backend]
            ratio = statistics.median(run["ratio"] for run in runs)
            slower |= ratio > 1.0
            table.add_row(
                w.name,
                backend,
                spread([run["script"]["accuracy"] for run in runs]),
                spread([run["nnrun"]["accuracy"] for run in runs]),
                f"{statistics.median(run['script']['wall'] for run in runs):.1f}",
                f"{statistics.median(run['nnrun']['wall'] for run in runs):.1f}",
                f"{ratio:.3f}",
                "ok" if ratio <= 1.0 else "[bold red]SLOWER[/]",
            )
    for line in skipped:
        table.add_row(line.split(":")[0], "-", "-", "-", "-", "-", "-", "skipped")
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
        out.print(_throughput(mnist, backends, peak))
    return 3 if slower else 0


def _matmul_peak(n=2048, repeat=7):
    """NumPy's float32 matrix multiply on this machine, GFLOP/s (best of `repeat`): the ceiling to compare with."""
    import numpy as np

    a, b = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    a @ b  # BLAS starts its threads
    best = min(_seconds(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _shaped_peak(batch, shapes, repeat=50):
    """NumPy's GFLOP/s on a training step's own matrix products: for each dense
    layer (n_in, n_out), the forward X @ W and the backward X.T @ G and G @ W.T."""
    import numpy as np

    rng = np.random.default_rng(0)
    flops = seconds = 0.0
    for n_in, n_out in shapes:
        x, w = (
            rng.standard_normal((batch, n_in), dtype=np.float32),
            rng.standard_normal((n_in, n_out), dtype=np.float32),
        )
        g = rng.standard_normal((batch, n_out), dtype=np.float32)
        for product in (lambda x=x, w=w: x @ w, lambda x=x, g=g: x.T @ g, lambda g=g, w=w: g @ w.T):
            product()
            seconds += min(_seconds(product) for _ in range(repeat))
            flops += 2 * batch * n_in * n_out
    return flops / seconds / 1e9


def _seconds(work):
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _throughput(w, backends, peak):
    """The MNIST fit's GFLOP/s on each side, against NumPy's matmul peak.

    A dense layer of n_in x n_out costs 2 n_in n_out FLOPs a sample forward and
    twice that backward, so training costs 6 x (sum of n_in n_out) a sample and
    evaluating 2 x; biases and activations are left out (under 1%).
    """
    config = yaml.safe_load((ROOT / "configs" / w.config).read_text())
    width, macs, shapes = 28 * 28, 0, []
    for layer in config["model"]["layers"]:
        if isinstance(layer, dict) and "Dense" in layer:
            macs += width * layer["Dense"]["units"]
            shapes.append((width, layer["Dense"]["units"]))
            width = layer["Dense"]["units"]
    shaped = _shaped_peak(config["training"]["batch_size"], shapes)
    table = Table(
        "side",
        "fit s (median)",
        "GFLOP/s",
        "of NumPy's peak",
        "of NumPy at these shapes",
        title=f"MNIST fit throughput; NumPy float32 matmul: {peak:.0f} GFLOP/s at 2048x2048, "
        f"{shaped:.0f} GFLOP/s at this model's own products (batch {config['training']['batch_size']})",
    )

    def row(name, fits, flops):
        fit = statistics.median(fits)
        rate = flops / fit / 1e9
        table.add_row(name, f"{fit:.1f}", f"{rate:.0f}", f"{rate / peak:.0%}", f"{rate / shaped:.0%}")

    script_runs = [run["script"] for run in w.runs if run["backend"] == backends[0]]
    epochs = w.runs[0]["nnrun"]["epochs"]  # both sides train as many (--epochs overrides both)
    row("script (tensorflow)", [r["fit"] for r in script_runs], 6 * macs * 60000 * epochs)
    for backend in backends:
        runs = [run["nnrun"] for run in w.runs if run["backend"] == backend]
        n = runs[0]["samples"]
        row(
            f"nnrun {backend}",
            [r["fit"] for r in runs],
            runs[0]["epochs"] * macs * (6 * n["train"] + 2 * (n.get("validation") or 0)),
        )
    return table


def _script(w, seed, epochs, keras_home, csv):
    """Runs the plain script once: its wall time, test accuracy and its own fit time."""
    command = [sys.executable, str(BENCH / w.script), "--seed", str(seed)]
    command += [str(csv)] if w.csv else []
    command += ["--epochs", str(epochs)] if epochs else []
    wall, stdout = _timed(command, keras_home, KERAS_BACKEND="tensorflow")  # as the tutorial wrote it
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
        return {"wall": wall, "accuracy": float(result["test_accuracy"]), "fit": float(result["fit_s"])}
    except (IndexError, ValueError, KeyError, TypeError):
        raise Failed(f"{' '.join(command)}: its last stdout line is not the result JSON:\n{_tail(stdout)}") from None


def _nnrun(w, epochs, keras_home, csv, backend, seed):
    """Runs `nnrun train` once into a temporary folder: wall time, test accuracy, run.json's duration."""
    with tempfile.TemporaryDirectory(prefix=f"nnrun-bench-{w.name}-") as tmp:
        command = [
            str(NNRUN),
            "train",
            str(ROOT / "configs" / w.config),
            "--quiet",
            "--set",
            f"output.dir={tmp}",
            "--set",
            f"backend={backend}",
        ]
        command += ["--set", f"data.path={csv}"] if w.csv else []
        command += ["--set", f"training.epochs={epochs}"] if epochs else []
        command += ["--set", f"seed={seed}"]
        wall, stdout = _timed(command, keras_home)
        lines = stdout.strip().splitlines()
        run_dir = Path(lines[-1]) if lines else Path(tmp, "nothing printed")
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
            run = json.loads((run_dir / "run.json").read_text())
            samples = {name: split["samples"] for name, split in run["splits"].items()}
            return {
                "wall": wall,
                "accuracy": float(metrics["test"]["accuracy"]),
                "duration": float(run["duration_s"]),
                "fit": float(run["fit_s"]),
                "samples": samples,
                "epochs": int(run["epochs_completed"]),
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Failed(
                f"{' '.join(command)}: no test accuracy in '{run_dir}' ({e}); stdout:\n{_tail(stdout)}"
            ) from None


def _timed(command, keras_home, **environment):
    """Runs a command from the repository root; returns (wall seconds, stdout). Raises Failed on non-zero exit."""
    env = {**os.environ, "KERAS_HOME": keras_home, **environment}
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, errors="replace")
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise Failed(
            f"{' '.join(command)} exited with {proc.returncode} after {wall:.1f} s\n"
            f"--- stderr (last lines) ---\n{_tail(proc.stderr)}\n--- stdout (last lines) ---\n{_tail(proc.stdout)}"
        )
    return wall, proc.stdout


def _warm_up(keras_home):
    subprocess.run(
        [sys.executable, "-c", "import tensorflow, keras, sklearn, pandas, matplotlib"],
        cwd=ROOT,
        env={**os.environ, "KERAS_HOME": keras_home},
        capture_output=True,
    )


def _code(keras_home):
    """Which nnrun is measured: where it is imported from, and the commit of the tree."""
    where = subprocess.run(
        [sys.executable, "-c", "import nnrun; print(nnrun.__version__, nnrun.__file__)"],
        cwd=ROOT,
        env={**os.environ, "KERAS_HOME": keras_home},
        capture_output=True,
        text=True,
    ).stdout.strip()
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    commit = git.stdout.strip() if git.returncode == 0 else "not a git checkout"
    return f"nnrun {where or '?'} ({commit})"


def _tail(text, lines=25):
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # progress bars' colours
    text = re.sub(r"[\r\b]+", "\n", text)  # and their redraws
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"


def _machine():
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or platform.machine(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tf = next((importlib.metadata.version(d) for d in ("tensorflow", "tensorflow-cpu") if _installed(d)), "?")
    return (
        f"nproc {usable} ({cpu}), {platform.system()} {platform.release()}, python {platform.python_version()}, "
        f"tensorflow {tf}, keras {importlib.metadata.version('keras')}"
    )


def _installed(dist):
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    sys.exit(main())
