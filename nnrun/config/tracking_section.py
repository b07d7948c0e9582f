"""The config's `tracking:` section: where else a run is recorded while it trains (TensorBoard, MLflow).

Plain pydantic: validating it imports neither TensorBoard nor MLflow.
"""

import re
import urllib.parse
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, BeforeValidator, Field

from nnrun.config.section import Masked, Section

TRACKERS = ("tensorboard", "mlflow")


def _switch(value):
    """`true` or empty (`mlflow:` as YAML reads it) -> the defaults, `false` -> off."""
    return {} if value is True or value is None else None if value is False else value


class TensorBoardTracking(Section):
    """Keras's TensorBoard callback, writing into the run directory's tensorboard/ (scalars per epoch)."""

    histogram_freq: int = Field(0, ge=0, strict=True, description="Weight histograms every N epochs; 0: none.")
    write_graph: bool = Field(False, description="Also write the model's graph.")


def _tracking_uri(value):
    """A store MLflow can open: a server, a database, or databricks; a bare file name is not one."""
    if value != "databricks" and not re.match(
        r"(https?|sqlite|postgresql|mysql|mssql|file|databricks)(\+\w+)?:", value
    ):
        hint = f"sqlite:///{value}" if value.endswith(".db") else "http://host:5000"
        raise ValueError(f"not a tracking URI MLflow can use; e.g. {hint} or sqlite:///mlflow.db; got {value!r}")
    try:
        password = urllib.parse.urlsplit(value).password
    except ValueError:  # a port that is not a number: MLflow says so when it connects
        password = None
    if password is not None:  # the resolved config is written into the run directory and uploaded to MLflow
        shown = re.sub(r"(?<=://)([^/@:]*):[^/@]*@", r"\1:***@", value)
        raise Masked(
            "holds a password, which the run's config.yaml would keep; set the URI in $MLFLOW_TRACKING_URI "
            "instead, or the user and password in $MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD; "
            f"got {shown!r}"
        )
    return value


class MlflowTracking(Section):
    """One MLflow run per nnrun run: the config as params, each epoch's metrics, the run directory as artifacts."""

    experiment: str | None = Field(None, min_length=1, description="The MLflow experiment; by default output.name.")
    tracking_uri: Annotated[str, AfterValidator(_tracking_uri)] | None = Field(
        None,
        min_length=1,
        description="By default $MLFLOW_TRACKING_URI, else the SQLite store mlflow.db beside output.dir. "
        "No password here: $MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD.",
    )
    artifacts: bool = Field(True, description="Log the run directory's files (model, plots, history) as artifacts.")


class Tracking(Section):
    """Where else a run is recorded while it trains (the run directory stays the record of truth)."""

    tensorboard: Annotated[TensorBoardTracking | None, BeforeValidator(_switch)] = Field(
        None,
        description="true, or Keras's TensorBoard options; then: tensorboard --logdir runs",
    )
    mlflow: Annotated[MlflowTracking | None, BeforeValidator(_switch)] = Field(
        None,
        description="true, or where to log; needs nnrun[mlflow]",
    )

    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if data is None or data == "none":
            return {}
        if isinstance(data, str):
            data = [data]
        if isinstance(data, list) and all(isinstance(name, str) for name in data):
            return {name: {} for name in data if name != "none"}
        if not isinstance(data, dict):
            raise ValueError(f"expected a list of trackers ({', '.join(TRACKERS)}), or a mapping of them; got {data!r}")
        return data

    @pydantic.model_serializer(mode="wrap")
    def _on_only(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A tracker that is off is left out: written back, an empty key would turn it on.
        return {name: value for name, value in handler(self).items() if value is not None}

    def names(self) -> list[str]:
        """The trackers turned on, e.g. ['tensorboard']."""
        return [name for name in TRACKERS if getattr(self, name) is not None]
