"""nnrun.data.columns: what kind each column of a table is, and why; ids told from measurements.

Tables are small DataFrames made here; nothing reads a file or loads Keras.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nnrun.config import validation as config
from nnrun.data import columns
from nnrun.errors import DataError

N = 200
rng = np.random.default_rng(0)


def data_section(**fields):
    raw = {"source": "csv", "path": "table.csv", "target": "y", **fields}
    return config.validate({"data": raw, "model": ["Flatten"], "loss": "mse"}, "test").data


def kinds(frame, data=None):
    return {name: column.kind for name, column in columns.classify(frame, data).items()}


def churn_like(n=N):
    """Churn_Modelling.csv's kinds of columns, as the training split holds them (shuffled, with gaps)."""
    rows = np.sort(rng.choice(np.arange(1, int(n / 0.72) + 1), n, replace=False))
    return pd.DataFrame(
        {
            "RowNumber": rng.permutation(rows),
            "CustomerId": rng.choice(np.arange(15_565_701, 15_815_690), n, replace=False),
            "Surname": [f"Name{i % 150}" for i in range(n)],
            "CreditScore": rng.integers(350, 850, n),
            "Geography": rng.choice(["France", "Spain", "Germany"], n),
            "Balance": rng.normal(7e4, 3e4, n).round(2),
            "EstimatedSalary": rng.random(n) * 1e5,
        }
    )


def test_ids_look_like_ids_and_measurements_stay_numbers():
    frame = churn_like()
    frame["population"] = rng.choice(np.arange(1_000, 40_000_000), N, replace=False)  # all different: a measurement
    frame["seq"] = np.arange(500, 500 + N)  # a numbering, whatever its name
    frame["Unnamed: 0"] = np.arange(N)  # the index pandas wrote out
    frame["comment"] = [f"called on day {i} about the card" for i in range(N)]
    frame["code"] = [f"C{i:05d}" for i in range(N)]
    assert kinds(frame) == {
        "RowNumber": "id",
        "CustomerId": "id",
        "Surname": "text",
        "CreditScore": "numeric",
        "Geography": "categorical",
        "Balance": "numeric",
        "EstimatedSalary": "numeric",
        "population": "numeric",
        "seq": "id",
        "Unnamed: 0": "id",
        "comment": "text",
        "code": "id",
    }


def test_each_column_comes_with_why_for_a_caller_that_writes_it_down():
    frame = churn_like()[["RowNumber", "CustomerId", "Surname", "CreditScore", "Geography"]]
    found = columns.classify(frame, data_section(numeric=["CreditScore"]))
    assert found["RowNumber"].reason.startswith("an id: numbered from ")
    assert found["RowNumber"].reason.endswith(f", a different whole number in each of {N} rows")
    assert found["CustomerId"].reason == f"an id: named like one, a different whole number in each of {N} rows"
    assert found["Surname"].reason == f"free text: 150 different values in {N} rows"
    assert found["CreditScore"] == columns.Column("numeric", "listed in data.numeric")
    assert found["Geography"] == columns.Column("categorical", "text with 3 values")
    assert [name for name, column in found.items() if column.kind in columns.DROPPED] == [
        "RowNumber",
        "CustomerId",
        "Surname",
    ]


def test_every_column_that_cannot_be_used_is_refused_in_one_line_with_the_drop_list_to_write():
    frame = churn_like()
    frame["comment, free"] = [f"called on day {i}" for i in range(N)]
    with pytest.raises(DataError) as info:
        columns.kinds(frame, data_section())
    line = str(info.value)
    assert "\n" not in line, line
    assert line.startswith("data.path 'table.csv': 4 columns cannot be used as they are: columns 'RowNumber' (an id:")
    assert "'CustomerId' (an id: named like one," in line and "'Surname' (free text: 150 different" in line
    assert (
        "are ids or free text, which the model would only memorize: add them to data.drop "
        '(drop: [RowNumber, CustomerId, Surname, "comment, free"]), or list one in data.numeric or data.categorical'
    ) in line


def test_other_problems_are_named_with_the_ids_in_the_same_line():
    frame = churn_like()[["RowNumber", "CreditScore"]].astype({"CreditScore": object})
    frame.loc[[3, 9], "CreditScore"] = "?"
    frame["plan"] = rng.choice(["a", "b"], N)
    with pytest.raises(DataError) as info:
        columns.kinds(frame, data_section(categorical=[]))
    assert str(info.value).startswith("data.path 'table.csv': 3 columns cannot be used as they are: column 'RowNumber'")
    assert "column 'CreditScore' holds numbers and 2 text values (e.g. '?')" in str(info.value)
    assert "column 'plan' holds text (e.g. " in str(info.value)
    assert str(info.value).endswith("but is not listed; add it to data.categorical or data.drop")


def test_one_column_reads_as_it_always_did():
    frame = pd.DataFrame({"id": np.arange(1000, 1000 + N), "x": rng.random(N)})
    with pytest.raises(DataError) as info:
        columns.kinds(frame, data_section())
    assert str(info.value) == (
        f"data.path 'table.csv': column 'id' is an id: numbered from 1000 to 1199, a different whole number in "
        f"each of {N} rows, which the model would only memorize; add it to data.drop, or to data.numeric to use it"
    )
    assert columns.kinds(frame, data_section(numeric=["id"]))[0] == {"id": "numeric", "x": "numeric"}


def test_a_decimal_comma_is_said_alone_as_it_changes_how_the_whole_file_reads():
    frame = churn_like()[["RowNumber"]].assign(rate=[f"{i},5" for i in range(N)])
    with pytest.raises(DataError) as info:
        columns.kinds(frame, data_section())
    assert str(info.value) == (
        "data.path 'table.csv': column 'rate' holds numbers with a decimal comma (e.g. '0,5'); set data.decimal: ','"
    )


@pytest.mark.parametrize(
    "name",
    ["id", "ID", "Id", "CustomerId", "customerID", "user_id", "user id", "id_user", "RowNumber", "index", "uuid"],
)
def test_names_of_ids(name):
    assert columns.named_like_id(name)


@pytest.mark.parametrize("name", ["paid", "Valid", "ANDROID", "population", "idle_time", "NumOfProducts", "monkey"])
def test_names_that_are_not_of_ids(name):
    assert not columns.named_like_id(name)


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(50, 400), kept=st.floats(0.34, 1.0), start=st.integers(-1000, 10**9), seed=st.integers(0, 2**16))
def test_a_numbering_is_an_id_however_the_split_took_its_rows(n, kept, start, seed):
    numbers = np.random.default_rng(seed).permutation(np.arange(start, start + int(n / kept)))[:n]
    assert kinds(pd.DataFrame({"amount": numbers})) == {"amount": "id"}


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(50, 400), seed=st.integers(0, 2**16))
def test_whole_numbers_spread_as_measurements_are_numbers_even_when_all_differ(n, seed):
    values = np.random.default_rng(seed).choice(10 * n * n, n, replace=False)
    assume(values.max() - values.min() + 1 > 3 * n)
    assert kinds(pd.DataFrame({"population": values})) == {"population": "numeric"}


cells = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["2020-01-05", "05/01/2020", "1,5", "?", "", " "]),
)


@settings(max_examples=40, deadline=None, database=None)
@given(
    table=st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=60),
    names=st.lists(st.text(min_size=1, max_size=10), min_size=3, max_size=3, unique=True),
)
def test_any_table_gets_a_kind_and_a_reason_for_each_column_never_an_exception(table, names):
    frame = pd.DataFrame(table, columns=names)
    for column in (frame[name] for name in names):  # as pandas reads a file: a column of numbers or of text
        converted = pd.to_numeric(column, errors="coerce")
        frame[column.name] = converted if converted.notna().sum() == column.notna().sum() else column.astype(object)
    found = columns.classify(frame)
    assert list(found) == names
    for column in found.values():
        assert column.kind in (*columns.KINDS, *columns.DROPPED) and column.reason
        assert (column.kind == "date") == (column.format is not None) or column.problem
    problems = {name: column for name, column in found.items() if column.problem}
    if problems:
        assert "\n" not in columns.refusal(problems, "data.path 't.csv'")
