"""predict's CSV reader without pandas: the same model inputs and warnings as the pandas path, or that path."""

import gzip

import numpy as np
import pytest

from nnrun.data import csv_file, csv_table, light_table

PARTS = ("year", "month_sin", "month_cos", "day_of_year_sin", "day_of_year_cos", "weekday_sin", "weekday_cos")


def preprocessing(read=None, scale="standard"):
    """A run's preprocessing.json for columns a, b (numbers), c, d (categories), e (dates)."""
    numeric = {name: {"fill": 1.5} for name in ("a", "b", *(f"e.{p}" for p in PARTS))}
    for i, stats in enumerate(numeric.values()):
        stats.update({"mean": 0.25 * i, "scale": 1.0 + i} if scale == "standard" else {"min": -0.5, "scale": 0.1})
    categorical = {
        "c": {"fill": "p", "categories": ["p", "q", "x, y"]},
        "d": {"fill": "7", "categories": ["12", "7"]},
    }
    width = len(numeric) + 5
    return {
        "kind": "table",
        "input_shape": [width],
        "columns": ["a", "c", "b", "d", "e"],
        "numeric": numeric,
        "categorical": categorical,
        "dates": {"e": {"format": "%Y-%m-%d"}},
        "read": read or {"sep": None, "decimal": ".", "encoding": "utf-8", "na_values": ["missing"]},
        "task": "regression",
        "rescale": None,
    }


ROWS = """id,a,b,c,d,e,other
1,3,0.25,p,7,2021-03-04,z
2,,NA,"x, y",012,,z
3,-4,1e3,new,99,1999-12-31,z
4,10,missing, q ,7,2024-02-29,z
5,0,.5,,,2000-01-01,z
"""


def both(path, prep):
    """(light reader's Rows, pandas path's (columns, inputs, warnings, ids)) for one file."""
    table = csv_file.read_table(path, prep["read"], "input")
    unseen: list[str] = []
    x = csv_table.apply(table, prep, unseen)
    return light_table.read(path, prep, "id"), ([str(c) for c in table.columns], x, unseen, table["id"].tolist())


@pytest.mark.parametrize("name", ["rows.csv", "rows.csv.gz"])
@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_the_light_reader_gives_the_pandas_paths_inputs_and_warnings(tmp_path, name, scale):
    path = tmp_path / name
    with (gzip.open if name.endswith(".gz") else open)(path, "wt") as f:
        f.write(ROWS)
    prep = preprocessing(scale=scale)
    light, (header, x, unseen, ids) = both(path, prep)
    assert light is not None, "read without pandas"
    assert light.header == header and light.ids == ids
    assert light.x.dtype == x.dtype and np.array_equal(light.x, x)
    assert light.unseen == unseen
    assert any("'new'" in line and "'99'" not in line for line in unseen) and any("'99'" in line for line in unseen)
    assert sum("missing, filled" in line for line in unseen) == 5  # a, b, c, d and e each have a gap


def test_a_semicolon_table_with_decimal_commas_reads_alike(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(ROWS.replace(",", ";").replace("0.25", "0,25").replace(".5", ",5").replace("x; y", "x, y"))
    prep = preprocessing(read={"sep": ";", "decimal": ",", "encoding": "utf-8", "na_values": ["missing"]})
    light, (header, x, unseen, ids) = both(path, prep)
    assert light is not None and light.header == header and light.ids == ids and light.unseen == unseen
    assert np.array_equal(light.x, x)


@pytest.mark.parametrize(
    "change",
    [
        ("1,3,0.25,p", "1,three,0.25,p"),  # not a number: the pandas path names it
        ("2021-03-04", "04/03/2021"),  # not a date in the format: pandas says so
        ("1999-12-31", "1999-1-5"),  # a date that would not write back as given
        (",z\n2,", ",z,extra\n2,"),  # a row wider than the header
        (",p,7,", ",\tp,7,"),  # a tab before a value
        ("1,3,0.25,p", "1,\uff13,0.25,p"),  # a fullwidth digit: pandas reads text, Python's float a number
        ("1,3,0.25,p", "1,3,\u0663,p"),  # an Arabic-Indic digit, likewise
        ("1,3,0.25,p,7", "1,3,0.25,p,\u0663"),  # ... in a category column
        ("\n1,", "\n\u0663,"),  # ... as an id
        ("1,3,0.25,p", "1,3,-0,p"),  # -0: pandas's int64 column makes it 0, float64 keeps the sign
        ("2000-01-01,z\n", '2000-01-01,"z\n'),  # a quote left open to the end of the file: pandas refuses it
    ],
)
def test_what_the_light_reader_is_not_sure_of_goes_to_pandas(tmp_path, change):
    path = tmp_path / "rows.csv"
    path.write_text(ROWS.replace(*change, 1))
    assert light_table.read(path, preprocessing(), "id") is None


def test_a_category_pandas_reads_as_booleans_or_floats_goes_to_pandas(tmp_path):
    for values in (("True", "False"), ("1.5", "2")):
        path = tmp_path / "rows.csv"
        path.write_text(
            ROWS.replace(",p,", f",{values[0]},")
            .replace(",new,", f",{values[1]},")
            .replace('"x, y"', values[0])
            .replace(" q ", values[1])
            .replace(",,,", f",{values[0]},,")
        )
        assert light_table.read(path, preprocessing(), "id") is None


def test_the_missing_value_strings_are_pandass():
    from pandas._libs.parsers import STR_NA_VALUES

    assert light_table.NA_VALUES == STR_NA_VALUES


def test_a_large_file_is_left_to_pandas(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    path.write_text(ROWS)
    monkeypatch.setattr(light_table, "MAX_BYTES", path.stat().st_size - 1)
    assert light_table.read(path, preprocessing(), "id") is None
