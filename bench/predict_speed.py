"""How fast `nnrun predict` answers through an export, against the Keras path (issue 12).

Trains the MNIST config for one epoch (the accuracy does not matter here),
exports it as ONNX and LiteRT, writes the first 1,000 MNIST test digits as PNG
files, then measures whole processes under `/usr/bin/time`: one image cold,
and 1,000 PNGs in one call, per runtime (median of `--repeat`). It also
predicts all 10,000 test digits (one .npy) through each runtime and compares
classes and probabilities with Keras's.

Run by hand, never in CI (needs MNIST in the Keras cache and nnrun[export]):
    KERAS_HOME=/tmp/keras_home .venv/bin/python bench/predict_speed.py /tmp/predict-speed [--repeat 3]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NNRUN = Path(sys.executable).parent / "nnrun"
RUNTIMES = ("keras", "onnx", "litert")


def nnrun(*args, cwd):
    done = subprocess.run([str(NNRUN), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"nnrun {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def timed(args, cwd):
    """(wall seconds, peak RSS MB) of one whole `nnrun` process."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", str(NNRUN), *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"nnrun {' '.join(map(str, args))} failed: {done.stderr[-2000:]}")
    wall, kb = done.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kb) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    run = (
        nnrun(
            "train",
            REPO / "configs/mnist_mlp.yaml",
            "--quiet",
            "--set",
            "training.epochs=1",
            "--set",
            f"output.dir={work / 'runs'}",
            cwd=work,
        )
        .strip()
        .splitlines()[-1]
    )
    nnrun("export", run, "--format", "onnx", "--format", "litert", cwd=work)
    import keras

    (_, _), (x_test, _) = keras.datasets.mnist.load_data()
    pngs = work / "digits"
    pngs.mkdir(exist_ok=True)
    for i, digit in enumerate(x_test[:1000]):
        Image.fromarray(digit).save(pngs / f"{i:04d}.png")
    np.save(work / "test_digits.npy", x_test)

    rows = []
    for what, inputs in (("one image, cold", [pngs / "0000.png"]), ("1,000 PNGs, one call", [pngs])):
        for runtime in RUNTIMES:
            runs = [
                timed(["predict", *inputs, "--run", run, "--runtime", runtime, "--json"], work)
                for _ in range(args.repeat)
            ]
            rows.append(
                {
                    "what": what,
                    "runtime": runtime,
                    "wall_s": statistics.median(r[0] for r in runs),
                    "peak_rss_mb": statistics.median(r[1] for r in runs),
                }
            )
    print("| what | runtime | wall s (median) | peak RSS MB | ratio to keras |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        keras_row = next(r for r in rows if r["what"] == row["what"] and r["runtime"] == "keras")
        print(
            f"| {row['what']} | {row['runtime']} | {row['wall_s']:.2f} | {row['peak_rss_mb']:.0f} | "
            f"{row['wall_s'] / keras_row['wall_s']:.3f} |"
        )

    outputs = {}
    for runtime in RUNTIMES:
        lines = nnrun("predict", work / "test_digits.npy", "--run", run, "--runtime", runtime, "--json", cwd=work)
        outputs[runtime] = [json.loads(line) for line in lines.splitlines()]
    for runtime in ("onnx", "litert"):
        same = sum(a["label"] == b["label"] for a, b in zip(outputs[runtime], outputs["keras"], strict=True))
        worst = max(
            abs(p - b["probabilities"][c])
            for a, b in zip(outputs[runtime], outputs["keras"], strict=True)
            for c, p in a["probabilities"].items()
        )
        print(
            f"{runtime} vs keras on {len(outputs['keras'])} MNIST test digits: same class {same}, "
            f"largest probability difference {worst:.2g}"
        )


if __name__ == "__main__":
    main()
