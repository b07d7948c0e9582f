"""What backups cost: the same training with nnrun's per-epoch backups and with them switched off.

Runs `nnrun train` in fresh processes, interleaved (this machine is shared and
noisy), and compares the runs' `duration_s` in run.json (training, saving and
plotting: TensorFlow's import and the data loading are left out). Usage:

    .venv/bin/python bench/backup_overhead.py [--repeat 3] [--epochs 100] [CONFIG] [--set ...]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

OFF = "from nnrun.training import backup; backup.Backup._save_model = lambda self: None\n"
MAIN = "from nnrun.cli.main import main; main()"


def fit_seconds(code, args):
    out = subprocess.run([sys.executable, "-c", code + MAIN, *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    run = Path(out.stdout.strip().splitlines()[-1])
    return json.loads((run / "run.json").read_text())["duration_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/quickstart.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        args = [
            "train",
            options.config,
            "-q",
            "--set",
            f"training.epochs={options.epochs}",
            "--set",
            "training.callbacks=[]",
            "--set",
            f"output.dir={runs}",
        ]
        for item in options.overrides:
            args += ["--set", item]
        ratios = []
        for i in range(options.repeat):
            off, on = fit_seconds(OFF, args), fit_seconds("", args)
            ratios.append(on / off)
            print(f"repeat {i + 1}: without backups {off:.2f} s, with {on:.2f} s, ratio {on / off:.3f}", flush=True)
    print(f"median ratio with/without backups: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
