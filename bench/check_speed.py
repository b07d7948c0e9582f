"""Whole-process `nnrun check` time and peak memory: the quickstart, MNIST, and a layer outside the light path.

`nnrun check` judges the common layers and the bundled datasets without Keras (nnrun/model/quick.py);
anything else gives way to Keras, which must cost no more than before. Each config is checked
`--repeat` times under `/usr/bin/time` (median wall seconds, median peak RSS), with this checkout's
nnrun and, given `--baseline DIR` (a checkout of nnrun before, e.g.
`git archive e54eb58 | tar -x -C /tmp/nnrun-before`), with that one in the same run, with the ratio.

Run by hand, with the file cache warm (a first untimed run of each):
    KERAS_HOME=/tmp/keras_home .venv/bin/python bench/check_speed.py [--baseline /tmp/nnrun-before] [--repeat 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def configs(work):
    """{label: config path}: the two shipped configs the light path answers, and one it gives way on."""
    quickstart = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())
    quickstart["model"]["layers"].insert(1, "LayerNormalization")  # no rule for it: Keras builds the model
    outside = work / "quickstart_layernorm.yaml"
    outside.write_text(yaml.safe_dump(quickstart, sort_keys=False))
    return {
        "quickstart": REPO / "configs" / "quickstart.yaml",
        "mnist_mlp": REPO / "configs" / "mnist_mlp.yaml",
        "quickstart + LayerNormalization (Keras)": outside,
    }


def timed(checkout, config):
    """(wall seconds, peak RSS MB, exit code) of one `nnrun check` process run from `checkout`."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M %x", sys.executable, "-m", "nnrun", "check", str(config)],
        cwd=checkout,  # `python -m` imports from the working directory first
        env=env,
        capture_output=True,
        text=True,
    )
    wall, kb, code = done.stderr.strip().splitlines()[-1].split()
    if int(code) != 0:
        raise SystemExit(f"{checkout}: nnrun check {config} exited {code}:\n{done.stderr}")
    return float(wall), int(kb) / 1024, int(code)


def median(checkout, config, repeat):
    timed(checkout, config)  # the file cache warm
    runs = [timed(checkout, config) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of nnrun to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for label, config in configs(Path(work)).items():
            wall, mb = median(REPO, config, args.repeat)
            line = f"{label:42s} {wall:5.2f} s {mb:6.0f} MB"
            if args.baseline:
                base_wall, base_mb = median(args.baseline, config, args.repeat)
                line += f"   before {base_wall:5.2f} s {base_mb:6.0f} MB   ratio {wall / base_wall:.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
