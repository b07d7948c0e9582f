"""Issue 23's probe of hostile run directories and inputs, re-run: exit code, time and peak memory of each.

Trains three tiny runs once (an array run on digits, a table run on the churn
CSV of ../shared/data, an image-folder run), then for each case tampers with a
copy, runs the nnrun command a stranger would, and prints one row: the exit
code, wall seconds, peak RSS, whether anything was written outside the run
directory, and whether a line of the planted secret file reached the output.
What is refused must be refused in under 2 s and 200 MB (TensorFlow's import
is not paid for a refusal).

Run by hand, never in CI:
    .venv/bin/python bench/hostile_inputs.py /tmp/hostile [--churn ../shared/data/churn/Churn_Modelling.csv]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_memory import train as train_images  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NNRUN = Path(sys.executable).parent / "nnrun"
SECRET = "secret-line-of-someone-elses-file"


def nnrun(*args, cwd=None):
    """Runs nnrun under /usr/bin/time: (exit code, wall s, peak RSS MB, stdout, stderr)."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "peak %M KB", str(NNRUN), *map(str, args)], capture_output=True, text=True, cwd=cwd
    )
    wall = time.perf_counter() - start
    kb = int(re.findall(r"peak (\d+) KB", done.stderr)[-1])
    stderr = re.sub(r"(Command exited with non-zero status \d+\n)?peak \d+ KB\n$", "", done.stderr)
    return done.returncode, wall, kb / 1024, done.stdout, stderr


def train(work, config, *sets):
    done = subprocess.run(
        [str(NNRUN), "train", str(config), "--set", f"output.dir={work / 'runs'}", *(f"--set={s}" for s in sets)],
        capture_output=True,
        text=True,
        cwd=work,
    )
    if done.returncode:
        sys.exit(f"training {config} failed: {done.stderr[-800:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def copy(run, work, label):
    target = work / "cases" / label / run.name
    shutil.copytree(run, target, symlinks=True)
    return target


def link(path, target):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target)
    return path


def sparse(path, size, head=b""):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def then(*steps):
    """The last of `steps`: the tampering is done as the arguments are made, the command is the last."""
    return steps[-1]


def cases(work, runs):
    """(label, tamper-and-command, a folder outside that must stay empty or None) per case; each gets a copy."""
    secret = work / "passwd"
    secret.write_text(f"root:x:0:0:{SECRET}:/root:/bin/bash\n")
    digits, churn, images = runs["digits"], runs["churn"], runs["images"]
    info, prep = (json.loads((digits / name).read_text()) for name in ("run.json", "preprocessing.json"))
    x = work / "x.npy"
    np.save(x, np.zeros((1, 64), "float32"))

    yield (
        "history.csv linked to a secret; runs compare",
        lambda c: then(link(c / "history.csv", secret), ["runs", "compare", digits, c, "--output", work / "c.png"]),
        None,
    )
    yield (
        "model.keras linked elsewhere; evaluate",
        lambda c: then(link(c / "model.keras", digits / "model.keras"), ["evaluate", c]),
        None,
    )
    yield (
        "metrics.json not JSON; runs diff",
        lambda c: then((c / "metrics.json").write_text("{oops"), ["runs", "diff", digits, c]),
        None,
    )
    for folder in ("evaluation", "plots", "backup", "tensorboard"):
        target = work / "outside" / folder
        target.mkdir(parents=True)
        yield (
            f"{folder}/ linked outside; evaluate",
            lambda c, f=folder, t=target: then(link(c / f, t), ["evaluate", c]),
            target,
        )
    yield (
        "runs/latest linked to a run elsewhere; evaluate it",
        lambda c: then(link(c.parent / "latest", digits), ["evaluate", c.parent / "latest"]),
        None,
    )
    yield (
        "run.json nested 100,000 deep; nnrun runs",
        lambda c: then((c / "run.json").write_text("[" * 10**5 + "]" * 10**5), ["runs", c.parent]),
        None,
    )
    huge = 1 << 30
    yield "run.json 1 GiB (sparse); nnrun runs", lambda c: then(sparse(c / "run.json", huge), ["runs", c.parent]), None
    yield "run.json 1 GiB (sparse); evaluate", lambda c: then(sparse(c / "run.json", huge), ["evaluate", c]), None
    attempts = json.dumps({**info, "attempts": [{"status": "failed"}] * 10**6})
    yield (
        "run.json with a million attempts; nnrun runs",
        lambda c: then((c / "run.json").write_text(attempts), ["runs", c.parent]),
        None,
    )
    notes = json.dumps({**prep, "notes": ["n"] * 5 * 10**6})
    yield (
        "preprocessing.json with 5 million notes; predict",
        lambda c: then((c / "preprocessing.json").write_text(notes), ["predict", x, "--run", c]),
        None,
    )
    million = work / "million.csv"
    million.write_text(",".join(f"c{i}" for i in range(10**6)) + "\n" + "1," * (10**6 - 1) + "1\n")
    yield "CSV of a million columns on one line; predict", lambda c: ["predict", million, "--run", churn], None
    wide = work / "wide.csv"
    wide.write_text(",".join("a" for _ in range(10**5)) + "\n" + "1," * (10**5 - 1) + "1\n")
    yield "CSV of 100,000 short columns; predict", lambda c: ["predict", wide, "--run", churn], None
    big = _npy_of(work / "big.npy", (2**28, 2))
    yield "honest .npy of 2 GiB, wrong shape; predict", lambda c: ["predict", big, "--run", digits], None
    png = _png(work / "huge.png", 9000)
    yield "9000x9000 PNG (accepted: the budget); predict", lambda c: ["predict", png, "--run", images], None


def _npy_of(path, shape):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + int(np.prod(shape)) * 4)
    return path


def _png(path, side):
    if not path.exists():
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype="uint8")).save(path, compress_level=1)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a scratch folder (made)")
    parser.add_argument("--churn", type=Path, default=REPO.parent / "shared/data/churn/Churn_Modelling.csv")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("cases", "outside"):
        shutil.rmtree(work / stale, ignore_errors=True)
    runs = {
        "digits": train(work, REPO / "configs/quickstart.yaml", "training.epochs=1"),
        "churn": train(work, REPO / "configs/churn_ann.yaml", f"data.path={args.churn.resolve()}", "training.epochs=1"),
        "images": train_images(work),
    }
    print("| case | exit | s | peak MB | written outside | secret shown | first line of stderr |")
    print("|---|---|---|---|---|---|---|")
    for k, (label, make, outside) in enumerate(cases(work, runs)):
        case = copy(runs["digits"], work, f"case-{k}")
        code, wall, mb, out, err = nnrun(*make(case))
        wrote = bool(outside and any(outside.iterdir()))
        first = err.strip().splitlines()[0][:110] if err.strip() else ""
        first = first.replace(str(work), "W").replace("|", "/")
        shown = SECRET in out + err
        flags = " | ".join("YES" if flag else "no" for flag in (wrote, shown))
        print(f"| {label} | {code} | {wall:.1f} | {mb:.0f} | {flags} | {first} |")
        sys.stdout.flush()
    os.remove(work / "big.npy")


if __name__ == "__main__":
    main()
