"""Test accuracy over seeds for bench/run.py: which seeds to run, and the figures paired per seed.

One seed's test accuracy is one draw: on Fashion-MNIST, seeds 1-5 and 42 span
0.9 points with nnrun and 0.4 with the tutorial's script, and one seed moves by
half a point on a CPU with another instruction set. So the runner trains both
sides with each of several seeds and reports the median, the range, and the
difference nnrun - script seed by seed (the same seed on both sides).
"""

import statistics

from rich.table import Table


def parse_seeds(text):
    """Seeds from '1-5', '1,2,42' or a mix ('1-3,42'), in the order given.

    Args:
        text: the `--seeds` argument.

    Returns:
        A non-empty list of ints.

    Raises:
        ValueError: a part is neither an integer nor a range `a-b` with a <= b.
    """
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        first, dash, last = part.partition("-")
        if dash and first.strip():  # a range; a leading '-' is a negative seed
            low, high = int(first), int(last)
            if low > high:
                raise ValueError(part)
            seeds.extend(range(low, high + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(text)
    return seeds


def spread(values, digits=4):
    """'median (min-max)', or the median alone when all are equal at `digits` decimals."""
    median = statistics.median(values)
    if round(max(values) - min(values), digits) == 0:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def signed_spread(values):
    """`spread` of differences in points (accuracy x 100), with their signs."""
    points = [100 * v for v in values]
    median = statistics.median(points)
    if round(max(points) - min(points), 2) == 0:
        return f"{median:+.2f}"
    return f"{median:+.2f} ({min(points):+.2f} to {max(points):+.2f})"


def per_seed(workflows, backends, shipped):
    """The table of test accuracies, one row per seed, then each workflow's medians.

    Args:
        workflows: the run's workflows; each has `name` and `runs`, one dict per
            seed and backend (`seed`, `backend`, `script`, `nnrun`).
        backends: the nnrun backends measured.
        shipped: workflow name -> the seed its config ships with (marked '*').

    Returns:
        A rich `Table`.
    """
    table = Table(
        "workflow",
        "backend",
        "seed",
        "script acc",
        "nnrun acc",
        "nnrun - script (points)",
        title="test accuracy per seed (the same seed on both sides; * the config's own seed)",
    )
    for w in workflows:
        for backend in backends:
            runs = [run for run in w.runs if run["backend"] == backend]
            for run in runs:
                script, nnrun = run["script"]["accuracy"], run["nnrun"]["accuracy"]
                table.add_row(
                    w.name,
                    backend,
                    f"{run['seed']}{'*' if run['seed'] == shipped[w.name] else ''}",
                    f"{script:.4f}",
                    f"{nnrun:.4f}",
                    f"{100 * (nnrun - script):+.2f}",
                )
            table.add_row(
                w.name,
                backend,
                f"median of {len(runs)}",
                spread([run["script"]["accuracy"] for run in runs]),
                spread([run["nnrun"]["accuracy"] for run in runs]),
                signed_spread([run["nnrun"]["accuracy"] - run["script"]["accuracy"] for run in runs]),
                style="bold",
                end_section=True,
            )
    return table
