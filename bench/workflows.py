"""The tutorial workflows, trained paired by bench/run.py and bench/speed.py: each plain script and
`nnrun train` as fresh processes, one after the other with the same seed, timed by the wall clock."""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from accuracy import spread
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


def select(names, datasets, keras_home, csv):
    """The workflows asked for whose data and config are here, and a line for each one skipped."""
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
    return selected, skipped


def train_pairs(selected, seeds, backends, epochs, keras_home, csv, err):
    """For each workflow and seed, the script then nnrun on each backend, one after the other; fills `w.runs`.

    Raises:
        Failed: a process failed.
    """
    for w in selected:
        for r, seed in enumerate(seeds):
            script = _script(w, seed, epochs, keras_home, csv)
            line = f"{w.name} {r + 1}/{len(seeds)} seed {seed}: "
            line += f"script {script['wall']:.1f} s (acc {script['accuracy']:.4f})"
            for backend in backends:
                nnrun = _nnrun(w, epochs, keras_home, csv, backend, seed)
                w.runs.append(
                    {
                        "seed": seed,
                        "backend": backend,
                        "script": script,
                        "nnrun": nnrun,
                        "ratio": nnrun["wall"] / script["wall"],
                    }
                )
                line += f", nnrun {backend} {nnrun['wall']:.1f} s (acc {nnrun['accuracy']:.4f}, on {nnrun['engine']})"
                line += f", ratio {w.runs[-1]['ratio']:.3f}"
            err.print(line)


def ratio_table(selected, backends, skipped):
    """The first table: accuracies, wall times and the median ratio per workflow and backend; and whether
    nnrun was slower somewhere."""
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
            engines = sorted({run["nnrun"]["engine"] for run in runs})
            table.add_row(
                w.name,
                backend if engines == [backend] else f"{backend} ({', '.join(engines)})",
                spread([run["script"]["accuracy"] for run in runs]),
                spread([run["nnrun"]["accuracy"] for run in runs]),
                f"{statistics.median(run['script']['wall'] for run in runs):.1f}",
                f"{statistics.median(run['nnrun']['wall'] for run in runs):.1f}",
                f"{ratio:.3f}",
                "ok" if ratio <= 1.0 else "[bold red]SLOWER[/]",
            )
    for line in skipped:
        table.add_row(line.split(":")[0], "-", "-", "-", "-", "-", "-", "skipped")
    return table, slower


def _script(w, seed, epochs, keras_home, csv):
    """Runs the plain script once: its wall time, test accuracy and its own fit time."""
    command = [sys.executable, str(BENCH / w.script), "--seed", str(seed)]
    command += [str(csv)] if w.csv else []
    command += ["--epochs", str(epochs)] if epochs else []
    wall, stdout = timed(command, keras_home, KERAS_BACKEND="tensorflow")  # as the tutorial wrote it
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
        wall, stdout = timed(command, keras_home)
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
                "engine": run["backend"],  # what auto chose
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Failed(
                f"{' '.join(command)}: no test accuracy in '{run_dir}' ({e}); stdout:\n{_tail(stdout)}"
            ) from None


def timed(command, keras_home, **environment):
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


def warm_up(keras_home):
    subprocess.run(
        [sys.executable, "-c", "import tensorflow, keras, sklearn, pandas, matplotlib"],
        cwd=ROOT,
        env={**os.environ, "KERAS_HOME": keras_home},
        capture_output=True,
    )


def _tail(text, lines=25):
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # progress bars' colours
    text = re.sub(r"[\r\b]+", "\n", text)  # and their redraws
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"
