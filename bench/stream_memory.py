"""Peak memory and speed of training on a table streamed from disk (data.stream) against one read whole.

Generates two CSV tables of the same kind (20 numeric columns, 2 text columns, a
0/1 target that follows from them), the second `--factor` times the rows of the
first, and trains the same small network on each for one epoch, streamed, under
`/usr/bin/time -f %M`; then trains in memory (stream: false) on the small table,
and on the large one unless `--skip-large-in-memory`. Prints one JSON line per
run (rows, file MB, peak RSS MB, training rows per second from run.json's fit_s,
test accuracy) and the ratios that matter: streamed peak RSS large/small (must
stay within 1.3), streamed against in-memory rows/s, and the accuracies.

Run by hand, never in CI (minutes; several GB of disk at the defaults):
    PYTHONPATH=. python bench/stream_memory.py /tmp/stream-bench [--rows 1000000] [--factor 10]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
NUMERIC, CHUNK = 20, 200_000


def make_table(path, rows, seed=0):
    """A CSV of `rows` rows, written a chunk at a time (kept when already there).

    pyarrow's CSV writer (C++) writes the 10 GB table several times faster than pandas' `to_csv`,
    the same text: floats rounded to 4 places print as their shortest form in both.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=NUMERIC)
    tmp = path.with_suffix(".tmp")
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            x = rng.normal(size=(n, NUMERIC))
            city = rng.choice(["Berlin", "Madrid", "Paris", "Rome"], n)
            plan = rng.choice(["basic", "gold", "pro"], n)
            logit = x @ weights / np.sqrt(NUMERIC) * 3 + (city == "Berlin") * 1.5 - (plan == "basic") * 1.0
            columns = {f"x{i}": x[:, i].round(4) for i in range(NUMERIC)}
            columns |= {"city": city, "plan": plan, "left": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)}
            table = pa.table(columns)
            if writer is None:
                writer = pacsv.CSVWriter(tmp, table.schema, write_options=pacsv.WriteOptions(quoting_style="none"))
            writer.write_table(table)
            if start // CHUNK % 50 == 0:
                print(f"{path.name}: {start + n:,} of {rows:,} rows", file=sys.stderr, flush=True)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    return path


def config(folder, table, stream):
    """A config that trains one epoch on `table`, streamed or not."""
    text = {
        "seed": 1,
        "data": {"source": "csv", "path": str(table), "target": "left", "stream": stream},
        "model": [{"Dense": {"units": 32, "activation": "relu"}}, {"Dense": {"units": 1, "activation": "sigmoid"}}],
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
        "training": {"epochs": 1, "batch_size": 1024, "validation_split": 0},
        "output": {"dir": str(folder / "runs")},
    }
    path = folder / f"{table.stem}-{'stream' if stream else 'memory'}.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


def train(folder, table, stream):
    """One `nnrun train` process: its figures as a dict."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "nnrun", "train", str(config(folder, table, stream)), "-q"]
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        sys.exit(f"training on {table} failed ({done.returncode}): {done.stderr[-3000:]}")
    wall, kb = done.stderr.strip().splitlines()[-1].split()
    run = Path(done.stdout.strip().splitlines()[-1])
    info = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    train_rows = info["splits"]["train"]["samples"]
    return {
        "table": table.name,
        "stream": stream,
        "file_mb": round(table.stat().st_size / 2**20, 1),
        "train_rows": train_rows,
        "peak_rss_mb": round(int(kb) / 1024, 1),
        "wall_s": float(wall),
        "fit_s": info["fit_s"],
        "rows_per_s": round(train_rows / info["fit_s"]),
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the small table")
    parser.add_argument("--factor", type=int, default=10, help="how many times more rows the large table has")
    parser.add_argument("--skip-large-in-memory", action="store_true")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    small = make_table(args.folder / f"table-{args.rows}.csv", args.rows)
    large = make_table(args.folder / f"table-{args.rows * args.factor}.csv", args.rows * args.factor)
    found = {}
    for name, table, stream in [
        ("small_stream", small, True),
        ("large_stream", large, True),
        ("small_memory", small, False),
        *([] if args.skip_large_in_memory else [("large_memory", large, False)]),
    ]:
        found[name] = train(args.folder, table, stream)
        print(json.dumps(found[name]), flush=True)
    ratios = {
        "streamed_peak_rss_large_over_small": round(
            found["large_stream"]["peak_rss_mb"] / found["small_stream"]["peak_rss_mb"], 3
        ),
        "streamed_over_in_memory_rows_per_s": round(
            found["small_stream"]["rows_per_s"] / found["small_memory"]["rows_per_s"], 3
        ),
        "test_accuracy_streamed_minus_in_memory": round(
            found["small_stream"]["test_accuracy"] - found["small_memory"]["test_accuracy"], 4
        ),
    }
    if "large_memory" in found:
        ratios["in_memory_peak_rss_large_over_small"] = round(
            found["large_memory"]["peak_rss_mb"] / found["small_memory"]["peak_rss_mb"], 3
        )
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
