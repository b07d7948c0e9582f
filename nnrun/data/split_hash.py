"""Seeded numbers per row of a table, from its row number alone: a streamed table's split and samples.

A row's split is drawn from its row number in the file and the seed (splitmix64),
not from the rows around it: the same row lands in the same split however the
file is chunked, in every pass, in training and in evaluate. The splits are not
stratified: each holds each class in about its share of the table (within the
sampling error of a random split, which is small for the tables that stream).
"""

from __future__ import annotations

import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
_TEST_SALT, _VALIDATION_SALT = 1, 2


def uniform(index: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A number in [0, 1) for each row number, fixed by the seed and the salt.

    Args:
        index: row numbers (int64).
        seed: the run's seed.
        salt: which of several independent draws.

    Returns:
        float64 numbers, one per row.
    """
    x = np.asarray(index, dtype="uint64") + np.uint64((seed * 0x9E3779B1 + salt * 0x85EBCA77) & (2**64 - 1))
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype("float64") / float(1 << 53)


def assign(index: np.ndarray, seed: int, test_split: float, validation_split: float) -> np.ndarray:
    """Each row's split: `TEST` with probability `test_split`, then `VALIDATION` with `validation_split`
    of the rest, else `TRAIN` (as the in-memory split takes the test rows first, then validation from the rest).

    Args:
        index: row numbers.
        seed: the run's seed.
        test_split: the share of rows tested on.
        validation_split: the share of the other rows validated on.

    Returns:
        int8 split codes, one per row.
    """
    test = uniform(index, seed, _TEST_SALT) < test_split
    validation = uniform(index, seed, _VALIDATION_SALT) < validation_split
    return np.where(test, TEST, np.where(validation, VALIDATION, TRAIN)).astype("int8")
