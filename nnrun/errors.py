"""The errors nnrun reports to its user, each with the exit code it maps to.

Bad input (exit 2) is the user's to fix and is reported in one line that names
the place; a failed run (exit 1) is reported with why it failed.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from pathlib import Path


class NnrunError(Exception):
    """Base of every error nnrun reports without a traceback.

    Every kind takes the same arguments, so that `within` can raise one again.

    Args:
        message: what went wrong, in one line that names the place.
        run_dir: the run or sweep directory, when one had begun: `nnrun` prints its path.
    """

    exit_code = 1

    def __init__(self, message: str, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir

    def within(self, run_dir: Path | None) -> NnrunError:
        """The same error raised again where a run had begun: a new one of its kind that carries the run directory.

        Args:
            run_dir: the run directory.

        Returns:
            A new error of the same class, message and exit code (a copy: subclasses
            may take other arguments, and an exit code may have been set on this one).
        """
        again = type(self).__new__(type(self))
        again.__dict__.update(self.__dict__)
        again.args = self.args
        again.run_dir = run_dir
        return again


class BadInput(NnrunError):
    """Input the user can fix: exit code 2."""

    exit_code = 2


class ConfigError(BadInput):
    """A config file, a `--set` override or a Keras name/argument in it."""


class DataError(BadInput):
    """A dataset that cannot be read, or that does not fit the config."""


class RunDirError(BadInput):
    """A path that is not a usable run directory."""


class RunDirBusy(RunDirError):
    """A run or sweep directory that another process holds (`rundir.liveness.claim`)."""


class Unsure(Exception):
    """A fast path (`nnrun check`'s, without Keras) cannot tell what the full one would say: the full path judges.

    Never reaches the user; its message says what was not understood, for tests and debugging.
    """


class RunFailed(NnrunError):
    """The run itself failed: diverged, ran out of memory. Exit code 1."""


class Diverged(RunFailed):
    """The loss became NaN or infinite: training diverged. Exit code 1."""


class WriteFailed(RunFailed):
    """A file could not be written: the disk is full, or its filesystem refused. Exit code 1.

    Args:
        path: the file, by the name it was to have (not the temporary one written first).
        error: the `OSError` the write raised.
        advice: what became of the run or what the user can do, said after the reason.
        run_dir: as `NnrunError`'s.
    """

    def __init__(
        self, path: str | os.PathLike[str], error: OSError, advice: str = "", run_dir: Path | None = None
    ) -> None:
        self.path, self.error, self.errno = Path(path), error, error.errno
        why = error.strerror or type(error).__name__  # the system's words: "No space left on device"
        self.reason = f"{why[:1].lower()}{why[1:]} writing '{path}'"
        super().__init__(f"{self.reason}; {advice}" if advice else self.reason, run_dir)

    def advised(self, advice: str, run_dir: Path | None = None) -> WriteFailed:
        """The same failure, with what became of it said after the reason (its earlier advice replaced).

        Args:
            advice: e.g. "the run completed; its model and metrics are saved".
            run_dir: the run directory it carries (default: this one's).

        Returns:
            A new `WriteFailed` of the same file and `OSError`.
        """
        return WriteFailed(self.path, self.error, advice, run_dir or self.run_dir)


# An OSError with one of these is the machine's fault, not a wrong path in the config: exit 1, not 2.
FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)


class Interrupted(KeyboardInterrupt):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) during a run: exit code 128 + its number.

    A `KeyboardInterrupt`, so it unwinds through Keras as Ctrl-C does.

    Args:
        signum: the signal's number.
        run_dir: the run or sweep directory it stopped, as `NnrunError`'s.
        plain: a Ctrl-C that came as Python's own KeyboardInterrupt, outside nnrun's signal
            handling (`nnrun` then says "interrupted", not which signal).
    """

    def __init__(self, signum: int, run_dir: Path | None = None, plain: bool = False) -> None:
        import signal

        super().__init__(signum)
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + self.signum
        self.run_dir = run_dir
        self.plain = plain


def carrying(error: BaseException, run_dir: Path | None) -> BaseException:
    """The error to raise in place of `error` now that a run or sweep directory is known: one that carries it.

    Args:
        error: an `NnrunError`, or a `KeyboardInterrupt` (nnrun's `Interrupted`, or a plain Ctrl-C).
        run_dir: the run or sweep directory.

    Returns:
        A new error of the same kind and message with `run_dir` set (a plain
        `KeyboardInterrupt` becomes `Interrupted(SIGINT)`); `error` itself for any other exception.
    """
    import signal

    if isinstance(error, NnrunError):
        return error.within(run_dir)
    if isinstance(error, KeyboardInterrupt):
        if isinstance(error, Interrupted):
            return Interrupted(error.signum, run_dir=run_dir, plain=error.plain)
        return Interrupted(signal.SIGINT, run_dir=run_dir, plain=True)
    return error


class GateFailed(NnrunError):
    """A quality gate (`--fail-under`, `--fail-over`) was not met. Exit code 3."""

    exit_code = 3


def one_line(error: object, limit: int = 200) -> str:
    """An exception's message on one line, cut to `limit` characters, for a message of ours.

    Args:
        error: the exception (or any object).
        limit: the most characters kept.

    Returns:
        The text.
    """
    return " ".join(str(error).split())[:limit]


def place(keys: Iterable[object]) -> str:
    """Where in a file a value is, as a dotted path of its keys: a key from the file itself (a
    column's name) only when it is short and printable, else `[...]`: messages never quote a file.

    Args:
        keys: the keys and indices down to the value (pydantic's `loc`).

    Returns:
        `numeric.age.fill`, or "its contents" for the whole file.
    """
    shown = [str(k) if isinstance(k, int) or (str(k).isprintable() and len(str(k)) <= 40) else "[...]" for k in keys]
    return ".".join(shown) or "its contents"


def listed(items: Iterable[object], limit: int = 5) -> str:
    """Items for a message, joined by commas, the rest counted: a message stays one short line.

    Args:
        items: what to name.
        limit: the most named.

    Returns:
        `a, b, c, d, e, and 9995 more`.
    """
    names = [str(item) for item in items]
    rest = len(names) - limit
    return ", ".join(names[:limit]) + (f", and {rest} more" if rest > 0 else "")


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """Returns a "; did you mean 'x'?" suffix for the closest choice, or "".

    Args:
        word: what the user wrote.
        choices: the valid names.

    Returns:
        The suffix to append to an error message, empty when nothing is close.
    """
    lowered: dict[str, str] = {}
    for choice in choices:  # of 'accuracy' and 'Accuracy', the name users write (Keras's function alias)
        if choice.lower() not in lowered or choice == choice.lower():
            lowered[choice.lower()] = choice
    match = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {quoted(lowered[match[0]])}?" if match else ""


def quoted(name: object) -> str:
    """A name in single quotes, as messages show names; Python's repr where that would be ambiguous.

    `vote` -> `'vote'`; a name with a quote, a backslash, an unprintable
    character or spaces at its ends (`'vote'`, `it's`, `a `) -> its repr
    (`"'vote'"`, `"it's"`, `'a '`), so what is shown is what to write.

    Args:
        name: the name (a column, a key); not a string: as `str` gives it.

    Returns:
        The quoted name.
    """
    text = str(name)
    return f"'{text}'" if _plain(text) else repr(text)


def shown(name: object) -> str:
    """A name in a list of names: as it is, or its repr where it could be misread (as `quoted`).

    Args:
        name: the name.

    Returns:
        `vote`, or `"'vote'"`.
    """
    text = str(name)
    return text if _plain(text) and "," not in text else repr(text)


def _plain(text: str) -> bool:
    return text.isprintable() and text == text.strip() and not any(c in text for c in "'\"\\")
