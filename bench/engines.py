"""Which engine trains each shipped model fastest on this machine: the measurements `backend: auto` rests on.

For each config (its layers, augmentation, optimizer, loss, batch size and
steps_per_execution, built by nnrun's own model code), generated data of its
input shape is trained for `--epochs` epochs in a fresh process per engine:
TensorFlow as Keras runs it on CPU (XLA off, `jit_compile="auto"`),
TensorFlow with XLA (`jit_compile=True`), and JAX (always XLA). The first epoch
pays tracing and compilation, so the table shows the later epochs' median
time, and each engine's ratio to TensorFlow's; `first` is the first epoch's.
Engines alternate model by model (tf, tf+xla, jax, tf, ...), so a shared
machine's noise falls on all alike.

    .venv/bin/python bench/engines.py [--only mnist,fashion,churn,cifar10] [--epochs 3] [--repeat 1]

Run by hand, never in CI: only the ratios within one run mean anything.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("tensorflow", "tensorflow+xla", "jax")
# name -> (config, input shape, training samples: the real dataset's, or 5,000 for CIFAR's slow CNN)
MODELS = {
    "mnist": ("mnist_mlp.yaml", (28, 28), 60000),
    "fashion": ("fashion_mnist_mlp.yaml", (28, 28), 60000),
    "churn": ("churn_ann.yaml", (13,), 8000),
    "cifar10": ("cifar10_cnn.yaml", (32, 32, 3), 5000),
}


def worker(name, engine, epochs):
    """In a fresh process: trains `name`'s model on `engine`; prints {"epochs_s": [...]} as JSON."""
    os.environ["KERAS_BACKEND"] = engine.split("+")[0]
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from nnrun.backend import keras as load_keras
    from nnrun.config import loading
    from nnrun.model import build

    keras = load_keras()
    config_file, shape, samples = MODELS[name]
    config = loading.load(ROOT / "configs" / config_file, ["backend=" + engine.split("+")[0]])
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(0)
    x = rng.random((samples, *shape), dtype=np.float32)
    model = build.build([dict(layer) for layer in config.model.layers], shape, augmentation=config.data.augmentation)
    units = model.output_shape[-1]
    y = rng.integers(0, max(units, 2), samples)
    y = y.astype("float32") if units == 1 else keras.utils.to_categorical(y, units)
    loss = "binary_crossentropy" if units == 1 else "categorical_crossentropy"
    model.compile(
        optimizer=build.optimizer_from(config.optimizer),
        loss=loss,
        metrics=["accuracy"],
        steps_per_execution=config.training.steps_per_execution,
        jit_compile=True if engine == "tensorflow+xla" else "auto",
    )
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(x, y, batch_size=config.training.batch_size, epochs=epochs, verbose=0, callbacks=[Timer()])
    print(json.dumps({"epochs_s": times, "steps": -(-samples // config.training.batch_size)}))


def measure(name, engine, epochs):
    """Runs `worker` in a fresh process; returns its JSON."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", name, engine, "--epochs", str(epochs)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(MODELS))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: the first pays compilation")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker, args.epochs)
    names = [n for n in args.only.split(",") if n]
    engines = [e for e in args.engines.split(",") if e]
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    results = {(n, e): [] for n in names for e in engines}
    for _ in range(args.repeat):
        for n in names:
            for e in engines:
                found = measure(n, e, args.epochs)
                results[n, e].append(found)
                print(n, e, found, file=sys.stderr, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("| model | engine | steps/epoch | first epoch s | later epochs s (median) | ms/step | ratio to tensorflow |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in names:
        base = None
        for e in engines:
            runs = [r for r in results[n, e] if "error" in r or len(r["epochs_s"]) > 1]
            if not runs or "error" in runs[0]:
                print(f"| {n} | {e} | - | - | - | - | failed: {runs[0]['error'] if runs else '?'} |")
                continue
            first = statistics.median(r["epochs_s"][0] for r in runs)
            later = statistics.median(t for r in runs for t in r["epochs_s"][1:])
            base = later if e == "tensorflow" else base
            ratio = f"{later / base:.2f}" if base else "-"
            steps = runs[0]["steps"]
            print(f"| {n} | {e} | {steps} | {first:.1f} | {later:.2f} | {1000 * later / steps:.2f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
