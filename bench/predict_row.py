"""Cold `nnrun predict` of one CSV row and one image through an ONNX export, against Keras (issue 25).

Trains the churn config for two epochs and a small image-folder model for one
(accuracy does not matter here), exports both as ONNX, then times whole
processes under `/usr/bin/time` (median of `--repeat`): one CSV row and one
PNG, per runtime. For the ONNX row it also lists, from `python -X importtime`,
whether pandas, scikit-learn, TensorFlow or Keras were imported, and the
slowest imports.

Run by hand, never in CI (needs nnrun[export]):
    .venv/bin/python bench/predict_row.py /tmp/predict-row \
        --churn-csv /work/shared/data/churn/Churn_Modelling.csv [--repeat 5]
"""

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image
from predict_speed import NNRUN, nnrun

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "sklearn", "scipy", "tensorflow", "keras", "jax")


def timed(args, cwd):
    """(wall seconds, peak RSS MB, exit code) of one whole `nnrun` process."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M %x", str(NNRUN), *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    wall, kb, code = done.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kb) / 1024, int(code)


def imports(args, cwd):
    """The modules one `nnrun` process imports: {name: cumulative microseconds}."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nnrun", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    found = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            found[name.strip()] = int(cumulative)
    return found


def image_run(work):
    """A one-epoch model on 24 coloured 16x16 PNGs in three class folders, exported as ONNX."""
    for i, (name, colour) in enumerate({"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}.items()):
        folder = work / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(8):
            Image.new("RGB", (16, 16), tuple(min(255, c + 3 * j + i) for c in colour)).save(folder / f"{j}.png")
    config = {
        "seed": 1,
        "data": {"source": "images", "path": str(work / "images"), "image_size": [16, 16], "rescale": "1/255"},
        "model": [
            {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
            "Flatten",
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
        "loss": "sparse_categorical_crossentropy",
        "training": {"epochs": 1, "batch_size": 8, "validation_split": 0},
        "output": {"dir": str(work / "runs"), "export": ["onnx"]},
    }
    (work / "images.yaml").write_text(yaml.safe_dump(config))
    return nnrun("train", work / "images.yaml", "--quiet", cwd=work).strip().splitlines()[-1]


def prepare(work, churn_csv):
    """Trains and exports the two runs; returns [(what, run directory, input file)] for the CSV row and the image."""
    churn = (
        nnrun(
            "train",
            REPO / "configs/churn_ann.yaml",
            "--quiet",
            "--set",
            "training.epochs=2",
            "--set",
            f"data.path={churn_csv.resolve()}",
            "--set",
            f"output.dir={work / 'runs'}",
            cwd=work,
        )
        .strip()
        .splitlines()[-1]
    )
    nnrun("export", churn, "--format", "onnx", cwd=work)
    with open(churn_csv.resolve(), encoding="utf-8") as f:
        (work / "one.csv").write_text(f.readline() + f.readline())
    images = image_run(work)
    return [("one CSV row, cold", churn, work / "one.csv"), ("one image, cold", images, work / "images/red/0.png")]


def cold_predictions(cases, work, repeat):
    """Each case predicted by whole processes through ONNX and Keras: rows of (what, runtime, wall, RSS, codes)."""
    rows = []
    for what, run, item in cases:
        for runtime in ("onnx", "keras"):
            runs = [timed(["predict", item, "--run", run, "--runtime", runtime, "--json"], work) for _ in range(repeat)]
            walls = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            rows.append((what, runtime, walls, rss, sorted({r[2] for r in runs})))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--churn-csv", type=Path, default=REPO / "data/Churn_Modelling.csv")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cases = prepare(work, args.churn_csv)

    print("| what | runtime | wall s (median) | peak RSS MB | exit codes |")
    print("| --- | --- | --- | --- | --- |")
    for what, runtime, wall, rss, codes in cold_predictions(cases, work, args.repeat):
        print(f"| {what} | {runtime} | {wall:.2f} | {rss:.0f} | {codes} |")

    churn = cases[0][1]
    found = imports(["predict", work / "one.csv", "--run", churn, "--runtime", "onnx", "--json"], work)
    print(f"\nONNX CSV row imports: {', '.join(f'{m}: {m in found}' for m in HEAVY)}")
    top = sorted(((t, m) for m, t in found.items() if "." not in m), reverse=True)[:8]
    print("slowest top-level imports (cumulative ms): " + ", ".join(f"{m} {t / 1000:.0f}" for t, m in top))


if __name__ == "__main__":
    main()
