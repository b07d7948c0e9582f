"""Where a sweep's Optuna study lives: a SQLite file in its sweep directory, or a database server whose
study several machines share (`sweep.storage`, `nnrun sweep --storage`, `$NNRUN_SWEEP_STORAGE`).

The URL goes whole only to the database driver. Messages show it masked
(`postgresql://nnrun:***@db/optuna`), and the sweep directory records it
without its password, which a continuing sweep takes again from `--storage`
or the environment (or the driver from its own: PGPASSWORD, ~/.pgpass).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from nnrun.errors import ConfigError, RunDirError, one_line

if TYPE_CHECKING:  # Optuna and SQLAlchemy are imported where used; here for annotations only
    import optuna
    import sqlalchemy.engine

ENV = "NNRUN_SWEEP_STORAGE"
FLAG = "--storage"
KEY = "sweep.storage"
CONNECT_TIMEOUT_S = 10  # an unreachable server is named in seconds, not after TCP's minutes
_PASSWORD_KEYS = ("password", "passwd", "pwd")  # a password in the query string (libpq takes one there too)
# The package that brings each driver SQLAlchemy imports by default, for the message when it is missing.
_DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL", "mysqldb": "mysqlclient"}


@dataclass(frozen=True)
class Storage:
    """A sweep's study's database.

    Attributes:
        url: its URL as given, password included; None: the SQLite file in the sweep directory.
        place: where it was given, for messages: `--storage`, `$NNRUN_SWEEP_STORAGE` or `sweep.storage`.
    """

    url: str | None = None
    place: str = KEY

    @property
    def shared(self) -> bool:
        """Whether the study is on a database server (or a file) that other sweeps may share."""
        return self.url is not None

    @property
    def shown(self) -> str:
        """The URL as messages and the sweep directory show it: its password masked."""
        return masked(self.url) if self.url else "the sweep directory's study.db"

    def __repr__(self) -> str:  # never the password, even in a debugger's or a traceback's view
        return f"Storage({self.shown!r}, place={self.place!r})"

    def scrub(self, text: str) -> str:
        """Text (a driver's error) with this URL's password masked, should the driver have echoed it."""
        secret = _password(self.url) if self.url else None
        for form in {secret or "", quote(secret or "", safe="")} - {""}:
            # As a whole word only: a password 'e' masked inside every word ('conn***ction') both garbles the
            # message and, by where the masks fall, gives the password away.
            text = re.sub(rf"(?<![\w%]){re.escape(form)}(?![\w%])", "***", text)
        return text


def choose(
    flag: str | None, configured: str | None, environ: Mapping[str, str] = os.environ, place: str = KEY
) -> Storage:
    """A new sweep's storage: `--storage`, else `$NNRUN_SWEEP_STORAGE`, else the config's `sweep.storage`.

    Args:
        flag: `--storage`'s value, if given.
        configured: the config's `sweep.storage`.
        environ: the environment.
        place: how messages name the config's key (`tiny.yaml: sweep.storage`).

    Returns:
        The `Storage`; its url None for the SQLite file in the sweep directory.
    """
    if flag:
        return Storage(flag, FLAG)
    if environ.get(ENV):
        return Storage(environ[ENV], f"${ENV}")
    return Storage(configured, place)


def of_sweep(
    sweep_dir: Path, flag: str | None, recorded: str | None, environ: Mapping[str, str] = os.environ
) -> Storage:
    """A continuing sweep's storage: the one its sweep directory records, its password from `--storage` or
    `$NNRUN_SWEEP_STORAGE` when they name the same database.

    Args:
        sweep_dir: the sweep directory, for messages.
        flag: `--storage`'s value, if given.
        recorded: its config's `sweep.storage` (without a password); None: its own study.db.
        environ: the environment.

    Returns:
        The `Storage`.

    Raises:
        ConfigError: `--storage` (or the variable) names another database than the one the sweep's study is in.
    """
    given = choose(flag, None, environ)
    if recorded is None:
        if flag:  # the variable may be set for other sweeps; a flag is meant for this one
            raise ConfigError(f"{FLAG}: the sweep {sweep_dir} keeps its study in its own study.db")
        return Storage(None, KEY)
    if given.url is None:
        return Storage(recorded, f"{sweep_dir}: {KEY}")
    if without_password(given.url) != without_password(recorded):
        raise ConfigError(
            f"{given.place}: {given.shown} is not the database of the sweep {sweep_dir}, whose study is in "
            f"{masked(recorded)}"
        )
    return given


def masked(url: str) -> str:
    """A database URL with its password (in the user part or the query string) shown as ***.

    Args:
        url: the URL.

    Returns:
        The URL to show.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not SQLAlchemy's form: everything before an @ may be secret
        return re.sub(r"(?<=://)[^/?#]*@", "***@", url) if "@" in url else url
    hidden = [k for k in parsed.query if k.lower() in _PASSWORD_KEYS]
    shown = parsed.difference_update_query(hidden).render_as_string(hide_password=True)
    return shown + ("&" if "?" in shown else "?") + "&".join(f"{k}=***" for k in hidden) if hidden else shown


def without_password(url: str) -> str:
    """A database URL without its password, as the sweep directory records it.

    Args:
        url: the URL.

    Returns:
        The URL; unchanged when SQLAlchemy cannot read it (opening it fails, naming its place).
    """
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return masked(url)
    hidden = [k for k in parsed.query if k.lower() in _PASSWORD_KEYS]
    kept = URL.create(
        parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query
    )  # URL.set(password=None) keeps the password: None there means unchanged
    return kept.difference_update_query(hidden).render_as_string(hide_password=False)


def _password(url):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        found = re.search(r"://[^/@]*:([^/@]*)@", url)
        return found.group(1) if found else None
    return next((v for k, v in parsed.query.items() if k.lower() in _PASSWORD_KEYS), None) or parsed.password


@contextlib.contextmanager
def opened(storage: Storage, sqlite_file: Path | None = None) -> Iterator[optuna.storages.RDBStorage]:
    """`rdb`, its connections closed when the block ends (a server's would otherwise be closed by the
    garbage collector, which warns).

    Args:
        storage: the `Storage`.
        sqlite_file: the sweep directory's study.db, for a `Storage` without a URL.

    Yields:
        Optuna's `RDBStorage`.
    """
    database = rdb(storage, sqlite_file)
    try:
        yield database
    finally:
        database.engine.dispose()


def rdb(storage: Storage, sqlite_file: Path | None = None) -> optuna.storages.RDBStorage:
    """Opens the study's database (its tables made the first time); a URL or a server that fails is exit 2.

    Args:
        storage: the `Storage`.
        sqlite_file: the sweep directory's study.db, for a `Storage` without a URL.

    Returns:
        Optuna's `RDBStorage`.

    Raises:
        ConfigError: the URL cannot be read, its driver is missing, or the server cannot be reached
            (the message names the place it was given and the URL, masked).
    """
    import optuna
    import sqlalchemy.exc

    if storage.url is None:
        assert sqlite_file is not None  # the sweep directory's own study
        try:  # workers share the file: they wait for its lock rather than fail
            return optuna.storages.RDBStorage(
                f"sqlite:///{sqlite_file.resolve()}", engine_kwargs={"connect_args": {"timeout": 60}}
            )
        except (sqlalchemy.exc.SQLAlchemyError, ValueError, RuntimeError) as e:
            raise RunDirError(f"'{sqlite_file}': not a study nnrun can read: {one_line(e, 150)}") from None
    url = _url(storage)
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(storage.url, engine_kwargs=_engine_kwargs(url))
        except sqlalchemy.exc.SQLAlchemyError as e:
            # Machines that start together on an empty database each make Optuna's tables (optuna#1092):
            # one does, the others find them made when they try again.
            # PostgreSQL says so with these classes; SQLite only in its message ('table ... already exists').
            racing = isinstance(e, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)) or (
                isinstance(e, sqlalchemy.exc.OperationalError) and "already exists" in str(e)
            )
            if racing and attempt < 2:
                time.sleep(random.uniform(0.2, 1.0))
                continue
            raise _refusal(storage, url, e) from None
        except (ImportError, RuntimeError, ValueError) as e:
            raise _refusal(storage, url, e) from None
    raise AssertionError("unreachable")  # the loop returns or raises


def probe(storage: Storage) -> None:
    """What `nnrun check` tries of a shared study's database, making nothing: the URL reads, its driver is
    installed, and a server's connection opens (a SQLite file's folder exists; the file is not made).

    Args:
        storage: the `Storage`, with a URL.

    Raises:
        ConfigError: as `rdb` says it, naming the place the URL was given and the URL, masked.
    """
    import sqlalchemy

    url = _url(storage)
    if url.get_backend_name() == "sqlite":
        folder = Path(url.database).expanduser().parent if url.database and url.database != ":memory:" else None
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"{storage.place}: {storage.shown}: no folder '{folder}' for the study's file")
    try:
        engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))  # imports the driver
        try:
            if url.get_backend_name() != "sqlite":  # connecting to SQLite would make the file
                with engine.connect():
                    pass
        finally:
            engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, RuntimeError, ValueError) as e:
        raise _refusal(storage, url, e) from None


def _url(storage: Storage) -> sqlalchemy.engine.URL:
    """The storage's URL as SQLAlchemy reads it; one it cannot read is exit 2."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    assert storage.url is not None  # a database server's (or a file's) URL
    try:
        return make_url(storage.url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(
            f"{storage.place}: {storage.shown}: not a database URL (SQLAlchemy's form: postgresql://user@host/db)"
        ) from None


def _engine_kwargs(url: sqlalchemy.engine.URL) -> dict[str, Any]:
    engine: dict[str, Any] = {"pool_pre_ping": True}  # a server may drop a connection idle through a long trial
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        engine["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return engine


def _refusal(storage: Storage, url: sqlalchemy.engine.URL, e: BaseException) -> ConfigError:
    """The one line that says why the storage's database did not open, its password masked."""
    import sqlalchemy.exc

    where = f"{storage.place}: {storage.shown}"
    if isinstance(e, sqlalchemy.exc.NoSuchModuleError):
        known = {"postgres": "postgresql", "postgres+psycopg": "postgresql+psycopg", "sqlite3": "sqlite"}
        hint = f"; write {known[url.drivername]}://" if url.drivername in known else ""  # Heroku's, Python's names
        return ConfigError(f"{where}: SQLAlchemy knows no database '{url.drivername}'{hint}")
    if isinstance(e, ImportError):
        # Optuna raises its own ImportError from the driver's, which names the module; SQLAlchemy the driver's.
        cause = e.__cause__ if isinstance(e.__cause__, ImportError) else e
        name = cause.name or url.get_driver_name()
        package = _DRIVERS.get(name.split(".")[0].lower(), name)
        return ConfigError(
            f"{where}: needs the database driver {name}, which is not installed; pip install '{package}'"
        )
    if isinstance(e, sqlalchemy.exc.SQLAlchemyError):
        why = storage.scrub(one_line(getattr(e, "orig", None) or e, 300))
        return ConfigError(f"{where}: cannot open the study's database: {why}")
    # Optuna's RuntimeError or ValueError: tables of an Optuna it cannot read
    return ConfigError(f"{where}: not a study database nnrun can read: {storage.scrub(one_line(e, 300))}")
