"""Peak memory of `nnrun predict` as the number of inputs grows.

Trains a tiny image-folder run once (configs/images_cnn.yaml, 1 epoch), then
predicts folders of 1,000 and 10,000 small PNGs under `/usr/bin/time -f %M`
and prints one JSON line per folder: `{"images": 1000, "peak_rss_kb": ..., "wall_s": ...}`.
Memory must stay flat: predict reads and predicts in batches.

Run by hand, never in CI:
    .venv/bin/python bench/predict_memory.py /tmp/predict-bench [--counts 1000 10000]
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NNRUN = Path(sys.executable).parent / "nnrun"


def make_pngs(folder, n, seed, size=(40, 32)):
    """`n` small RGB PNGs of random colour blocks in `folder` (kept when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == n:
        return folder
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype="uint8")
        Image.fromarray(pixels).resize(size, Image.NEAREST).save(folder / f"{i:05d}.png")
    return folder


def train(work):
    """A run of configs/images_cnn.yaml on 3 generated classes, 1 epoch; returns its path."""
    data = work / "train"
    for k, name in enumerate(("a", "b", "c")):
        make_pngs(data / name, 30, seed=k)
    done = subprocess.run(
        [
            str(NNRUN),
            "train",
            str(REPO / "configs/images_cnn.yaml"),
            "--set",
            f"data.path={data}",
            "--set",
            "training.epochs=1",
            "--set",
            f"output.dir={work / 'runs'}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def peak_rss(run, folder):
    """Peak RSS (KB) and wall time of `nnrun predict folder --json`."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M KB", str(NNRUN), "predict", str(folder), "--run", str(run), "--json"],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"predict exited {done.returncode}: {done.stderr[-500:]}")
    rows = len(done.stdout.splitlines())
    kb = int(re.findall(r"(\d+) KB", done.stderr)[-1])
    return {"images": rows, "peak_rss_kb": kb, "wall_s": round(wall, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a scratch folder (data and the run are kept for reruns)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--run", type=Path, help="an image-folder run to use instead of training one")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run = args.run or train(args.work)
    for n in args.counts:
        print(json.dumps(peak_rss(run, make_pngs(args.work / f"predict-{n}", n, seed=n))), flush=True)


if __name__ == "__main__":
    main()
