"""A CSV file read as train, evaluate and predict all do: bounded before pandas reads it, the separator
and quote sniffed, binary files refused, every problem one line that names the file and never echoes what it holds."""

from __future__ import annotations

import contextlib
import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnrun.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

# Wide tables (gene expression, pixels as columns) fit; a line of a million columns is refused before
# pandas reads it (it would take minutes and gigabytes to say no).
MAX_COLUMNS = 10_000
MAX_HEADER_CHARS = 1 << 20
# What people give as a table by mistake, by the bytes it starts with, and what to do instead.
_IMAGES = "images are read from a folder of class folders (data.source: images)"
MAGIC = (
    (b"GIF8", f"a GIF image; {_IMAGES}"),
    (b"\x89PNG", f"a PNG image; {_IMAGES}"),
    (b"\xff\xd8\xff", f"a JPEG image; {_IMAGES}"),
    (b"%PDF", "a PDF document; export the table as CSV"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one); save the table as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Office file (an old Excel .xls); save the table as CSV"),
    (b"PAR1", "a Parquet file; read it with data.source: parquet"),
    (b"\x93NUMPY", "a NumPy array (.npy); arrays are read from .npz files (data.source: npz)"),
    (b"\x1f\x8b", "gzip-compressed; name it .csv.gz and nnrun reads it"),
)
COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")


def read_table(path: Path, options: dict[str, Any], place: str) -> pd.DataFrame:
    """Reads a CSV file as train, evaluate and predict all do.

    Args:
        path: the file.
        options: `sep` and `quotechar` (None or absent: sniffed from the start of the file), `encoding`
            and `na_values` (more strings that mean "missing"), as `reading` gives them.
        place: what errors name first ('data.path', or 'input' for predict).

    Returns:
        A pandas DataFrame with at least one row.
    """
    check_file(path, place)  # before pandas is imported: a missing file is named in no time
    import pandas as pd

    with _reading(path, options, place) as arguments:
        table = pd.read_csv(path, **arguments, low_memory=False)
    if table.empty:
        raise DataError(f"{place}: '{path}' has a header but no rows")
    # pandas's parser leaves a block per column; a copy joins them, so a wide table is split and
    # taken apart in a few array operations rather than one per column.
    return table.copy()


def read_chunks(path: Path, options: dict[str, Any], place: str, rows: int) -> Iterator[pd.DataFrame]:
    """Reads a CSV file as `read_table` does, in DataFrames of up to `rows` rows, never whole.

    Args:
        path: the file.
        options: as `read_table`'s.
        place: what errors name first.
        rows: rows per DataFrame.

    Yields:
        DataFrames indexed by their data row in the file (from 0), at least one.
    """
    check_file(path, place)  # before pandas is imported: a missing file is named in no time
    import pandas as pd

    with _reading(path, options, place) as arguments:
        chunks = pd.read_csv(path, **arguments, chunksize=rows)
    with chunks:
        empty = True
        while True:
            with _reading(path, options, place, checked=True):
                chunk = next(chunks, None)
            if chunk is None:
                break
            if empty and chunk.empty:
                raise DataError(f"{place}: '{path}' has a header but no rows")
            empty = False
            yield chunk
    if empty:
        raise DataError(f"{place}: '{path}' has a header but no rows")


def check_file(path: Path, place: str) -> None:
    """Refuses a table's path that is not a file, in one line naming it.

    Args:
        path: the table.
        place: what the line names first ('data.path', 'input', 'DATA').

    Raises:
        DataError: the path does not exist, or is a folder or another thing that is not a file.
    """
    if not path.is_file():
        raise DataError(
            f"{place}: file '{path}' does not exist" if not path.exists() else f"{place}: '{path}' is not a file"
        )


@contextlib.contextmanager
def _reading(path, options, place, checked=False):
    """`pandas.read_csv`'s arguments for the file (sniffed unless `checked`), and whatever reading it
    raises turned into one line naming the file."""
    import pandas as pd

    # utf-8-sig drops a byte-order mark (Excel writes one); the parser takes CRLF as it comes.
    named = options.get("encoding") or "utf-8"
    utf8 = named.lower().replace("_", "-") in ("utf-8", "utf8")
    encoding = "utf-8-sig" if utf8 else named
    try:
        arguments: dict[str, Any] = {}
        if not checked:
            _refuse_binary(path, named, place)
            sep, quotechar = _sniff(path, encoding, options.get("sep"), options.get("quotechar"))
            _check_header(path, encoding, sep, quotechar, place)
            arguments = {
                "sep": sep,
                "quotechar": quotechar,
                "decimal": options.get("decimal") or ".",
                "encoding": encoding,
                "skipinitialspace": True,
                "na_values": options.get("na_values") or None,
            }
        yield arguments
    except pd.errors.EmptyDataError:
        raise DataError(f"{place}: '{path}' is empty") from None
    except UnicodeDecodeError as e:
        byte = f"byte {e.object[e.start]:#04x} at offset {e.start}"
        raise DataError(
            f"{place}: '{path}' is not {'UTF-8' if utf8 else named} text ({byte}); "
            "save it as UTF-8 CSV or set data.encoding (e.g. latin-1)"
        ) from None
    except (pd.errors.ParserError, ValueError) as e:
        reason = str(e).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
        raise DataError(f"{place}: '{path}' is not a readable CSV file: {reason}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile):  # gzip's messages quote the file's first bytes
        # (EOFError, uncaught, would read as Ctrl-C: click takes it for one.)
        raise DataError(f"{place}: '{path}' is not a readable .gz file (cut short, damaged, or not gzip)") from None
    except OSError as e:
        raise DataError(f"{place}: cannot read '{path}': {e.strerror or type(e).__name__}") from None


def _sniff(path, encoding, sep, quotechar):
    """The separator (comma, semicolon, tab or bar) and quote character (" or ') of a CSV file, from its first
    64 KB: each as given, else as sniffed, else comma and double quote."""
    import csv

    if sep and quotechar:
        return sep, quotechar
    with _opened(path, encoding) as f:
        sample = f.read(65536)
    try:
        sep = sep or csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:  # one column, or nothing it can tell apart
        sep = ","
    return sep, quotechar or _quote(sample, sep)


def _quote(sample, sep):
    """' where whole fields are quoted with it and none with ", else ".

    Not csv.Sniffer's guess: it counts any quoted words (`the 'plot' was thin`), and a table of
    such text with its commas in double-quoted fields would be split at those commas.
    """
    delimiter = re.escape(sep)

    def fields(quote):
        return len(re.findall(rf"(?:^|{delimiter}) *{quote}[^{quote}\n]*{quote} *(?={delimiter}|\r?$)", sample, re.M))

    return "'" if fields('"') == 0 and fields("'") > 0 else '"'


def _refuse_binary(path, encoding, place):
    """Refuses an image, an archive or other binary data given as a table, naming what it looks like."""
    if path.suffix.lower() in COMPRESSED:  # pandas reads these compressed
        return
    with open(path, "rb") as f:
        head = f.read(65536)
    kind = next((name for magic, name in MAGIC if head.startswith(magic)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = f"a WebP image; {_IMAGES}"
    if head.startswith(b"PAR1") and not place.startswith("data."):  # predict's and evaluate's files have no config
        kind = "a Parquet file; name it .parquet and nnrun reads it"
    wide = encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")) or head[:2] in (b"\xff\xfe", b"\xfe\xff")
    if kind is None and b"\x00" in head and not wide:
        kind = "binary data (it holds NUL bytes), not CSV text"
    if kind:
        raise DataError(f"{place}: '{path}' is not a text table: it is {kind}")


def _check_header(path, encoding, sep, quotechar, place):
    """Refuses a first line longer than `MAX_HEADER_CHARS` or of more than `MAX_COLUMNS` columns, reading no more."""
    import csv

    with _opened(path, encoding) as f:
        header = f.readline(MAX_HEADER_CHARS + 1)
    if len(header) > MAX_HEADER_CHARS:
        raise DataError(f"{place}: the first line of '{path}' is longer than {MAX_HEADER_CHARS} characters")
    count = len(next(csv.reader([header], delimiter=sep, quotechar=quotechar), []))
    if count > MAX_COLUMNS:
        raise DataError(f"{place}: '{path}' has {count} columns, more than nnrun reads ({MAX_COLUMNS})")


def _opened(path, encoding):
    """The file's text, decompressed as pandas reads a `.gz` file, to look at its start."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding=encoding, errors="replace", newline="")
