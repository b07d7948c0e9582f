"""A table's preprocessing learned chunk by chunk: what `csv_table.fit` learns from a whole training split.

The result is the same preprocessing dict, so predict, evaluate and exports use
a streamed run's as they use any table's. What is exact and what is sampled:

- column kinds and date formats: detected on the first `KIND_ROWS` training rows
  (all of them in a smaller table, which then gets `csv_table.fit`'s kinds);
- scaling (mean and standard deviation, or minimum and maximum): exact, merged over
  chunks (Chan's parallel variance), the missing values counted in at their fill;
- a numeric column's fill (the training median): exact up to `SAMPLE_VALUES` values
  per column, else the median of a seeded sample of that many training rows;
- categories and their fill (the most frequent value): exact, counted over every training row.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from nnrun.data import columns, csv_table, table_notes
from nnrun.data.split_hash import uniform
from nnrun.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from nnrun.config.schema import TableData

KIND_ROWS = 50_000
SAMPLE_VALUES = 4_000_000  # values per numeric sample, all columns together (32 MB)
MAX_CATEGORIES = 100_000  # per column: past this it is an id or free text, which detection on a sample missed
_SAMPLE_SALT = 3


class Learner:
    """Takes a table's training rows chunk by chunk (`add`), then gives their preprocessing (`fitted`).

    Args:
        data: the config's `data` section.
        seed: the run's seed, which draws the median's sample.
    """

    def __init__(self, data: TableData, seed: int) -> None:
        self.data, self.seed = data, seed
        self.pending: list[pd.DataFrame] = []  # rows before the kinds are known
        self.kinds: dict[str, str] | None = None
        self.formats: dict[str, str] = {}
        self.rows = 0
        self.missing: Any = None  # per feature column
        self.numeric: list[str] = []  # the columns scaled: numbers, and dates' parts
        self.count = self.mean = self.m2 = self.low = self.high = np.zeros(0)
        self.sample = np.zeros((0, 0))
        self.keys = np.zeros(0, dtype="uint64")
        self.counts: dict[str, Counter[str]] = {}

    def add(self, x: pd.DataFrame) -> None:
        """Learns from more training rows (feature columns only, indexed by their row in the file)."""
        if self.kinds is None:
            self.pending.append(x)
            if sum(len(p) for p in self.pending) < KIND_ROWS:
                return
            self._detect()
            return
        self._learn(x)

    def fitted(self) -> dict[str, Any]:
        """The preprocessing dict, as `csv_table.fit` gives it for the same rows."""
        kinds = self.kinds if self.kinds is not None else self._detect()
        data, missing = self.data, self.missing
        table_notes.refuse_empty([name for name in missing.index if missing[name] == self.rows], data)
        categorical = [c for c, kind in kinds.items() if kind == "categorical"]
        notes = table_notes.detection_notes(data, {c: len(self.counts[c]) for c in categorical}, self.formats)
        numeric = self._numeric()
        for name in [c for c in kinds if kinds[c] != "categorical"]:
            median = "s of its parts" if name in self.formats else f" {float(format(numeric[name]['fill'], '.6g'))}"
            table_notes.note_filled(notes, name, int(missing[name]), f"the training median{median}")
        encoded: dict[str, dict[str, Any]] = {}
        for name in categorical:
            counts = self.counts[name]
            top = max(counts.values())
            fill = min(value for value, k in counts.items() if k == top)  # SimpleImputer's: the smallest of ties
            encoded[name] = {"fill": fill, "categories": sorted(counts)}
            table_notes.note_filled(notes, name, int(missing[name]), f"the most frequent value {fill!r}")
        return csv_table.preprocessing(data, kinds, numeric, encoded, self.formats, notes)

    def _detect(self):
        import pandas as pd

        first = pd.concat(self.pending) if self.pending else pd.DataFrame()
        self.pending = []
        if first.shape[1] == 0 or len(first) == 0:
            raise DataError(f"data.path '{self.data.path}': no training rows, or no feature columns")
        self.kinds, self.formats = columns.kinds(first, self.data)
        expanded = csv_table.with_dates(first.iloc[:1], self.formats)
        self.numeric = [c for c in expanded.columns if self.kinds.get(c) != "categorical"]
        k = len(self.numeric)
        self.count, self.mean, self.m2 = np.zeros(k), np.zeros(k), np.zeros(k)
        self.low, self.high = np.full(k, np.inf), np.full(k, -np.inf)
        self.sample = np.zeros((0, k))
        self.counts = {c: Counter() for c, kind in self.kinds.items() if kind == "categorical"}
        self.missing = first.isna().sum() * 0
        self._learn(first)
        return self.kinds

    def _learn(self, x):
        self.rows += len(x)
        self.missing = self.missing + x.isna().sum()
        if self.numeric:
            values = csv_table.number_block(csv_table.with_dates(x, self.formats), self.numeric)
            self._merge(values)
            self._keep_sample(values, np.asarray(x.index, dtype="int64"))
        for name, counts in self.counts.items():
            for value, k in x[name].value_counts(dropna=True).items():
                counts[str(csv_table.as_text([value])[0])] += int(k)
            if len(counts) > MAX_CATEGORIES:
                raise DataError(
                    f"data.path '{self.data.path}': column '{name}' has more than {MAX_CATEGORIES} different values "
                    "in the training split: an id or free text; add it to data.drop"
                )

    def _merge(self, values):
        """Chan's merge of a chunk's count, mean and sum of squared deviations (missing values left out)."""
        present = ~np.isnan(values)
        n_b = present.sum(axis=0).astype("float64")
        safe = np.where(present, values, 0.0)
        mean_b = np.divide(safe.sum(axis=0), n_b, out=np.zeros_like(n_b), where=n_b > 0)
        m2_b = (np.where(present, values - mean_b, 0.0) ** 2).sum(axis=0)
        n = self.count + n_b
        delta = mean_b - self.mean
        ratio = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)
        self.m2 = self.m2 + m2_b + delta**2 * self.count * ratio
        self.mean = self.mean + delta * ratio
        self.count = n
        self.low = np.fmin(self.low, np.where(present, values, np.inf).min(axis=0, initial=np.inf))
        self.high = np.fmax(self.high, np.where(present, values, -np.inf).max(axis=0, initial=-np.inf))

    def _keep_sample(self, values, index):
        """Keeps the rows of smallest seeded key: a sample that does not depend on how the file was chunked."""
        size = max(1_000, SAMPLE_VALUES // max(len(self.numeric), 1))
        keys = np.concatenate([self.keys, uniform(index, self.seed, _SAMPLE_SALT)])
        rows = np.concatenate([self.sample, values])
        if len(keys) > size:
            kept = np.sort(np.argpartition(keys, size)[:size])
            keys, rows = keys[kept], rows[kept]
        self.keys, self.sample = keys, rows

    def _numeric(self):
        """Each scaled column's fill and scaling, as SimpleImputer and sklearn's scalers give them."""
        eps = np.finfo(np.float64).eps
        found: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.numeric):
            present = self.sample[:, i][~np.isnan(self.sample[:, i])]
            fill = float(np.median(present)) if len(present) else float(self.mean[i])
            missing = self.rows - self.count[i]
            n = self.rows
            mean = (self.count[i] * self.mean[i] + missing * fill) / n
            m2 = self.m2[i] + self.count[i] * missing / n * (self.mean[i] - fill) ** 2
            found[name] = {"fill": fill}
            if self.data.scale == "standard":
                var = m2 / n
                constant = var <= n * eps * var + (n * mean * eps) ** 2  # sklearn's _is_constant_feature
                found[name].update(mean=float(mean), scale=1.0 if constant else float(np.sqrt(var)))
            elif self.data.scale == "minmax":
                low = min(self.low[i], fill) if missing else self.low[i]
                high = max(self.high[i], fill) if missing else self.high[i]
                span = high - low
                scale = 1.0 if span < 10 * eps else 1.0 / span
                found[name].update(min=float(-low * scale), scale=float(scale))
        return found
