"""A run's status: the words run.json records, and those a reader sees.

No pydantic and no I/O here: the CLI offers these words as choices at load.
"""

import enum


class Status(str, enum.Enum):
    """How a run stands. run.json records the first four; a reader also sees `crashed` and `unknown`."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"  # recorded `running`, but its process is gone (SIGKILL, the OOM killer)
    UNKNOWN = "unknown"  # run.json cannot be read (runs diff and compare say so rather than stop)

    def __str__(self) -> str:  # the word itself, as run.json and `nnrun runs --json` write it
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # as the word's (Enum hashes the name): a set or dict of words finds it
        return hash(self.value)


RECORDED = (Status.RUNNING, Status.COMPLETED, Status.FAILED, Status.INTERRUPTED)  # what run.json may say
UNFINISHED = (Status.INTERRUPTED, Status.FAILED, Status.CRASHED)  # what `nnrun resume` continues
# A sweep's trial that stopped so continues with its sweep, which tries its point again; a failed one is a result.
CUT_OFF = (Status.INTERRUPTED, Status.CRASHED)
