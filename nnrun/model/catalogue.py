"""Keras's names and signatures, written down once per Keras version, so that `nnrun check` can judge a
config without importing Keras (seconds on TensorFlow).

The catalogue holds what `nnrun.model.build` and `nnrun.model.names` ask Keras: the layer, optimizer,
loss and metric names with their constructors' parameters, the names `activations`, `initializers`,
`regularizers` and `constraints` resolve, the pretrained networks. It is made from the installed Keras:
one ships with nnrun for the version it was made on (`python -m nnrun.model.catalogue` remakes it, and a
test fails when it no longer matches the installed Keras); for another version, the first command that
imports Keras anyway writes one to `$XDG_CACHE_HOME/nnrun/` (`remember`). A catalogue is read only when
it names the installed version, is under `MAX_BYTES` and has the expected shape; otherwise there is
none, and Keras itself is asked.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnrun import user_cache
from nnrun.errors import Unsure

FORMAT = 1
SHIPPED = Path(__file__).with_name("keras_catalogue.json")
MAX_BYTES = 2_000_000
NAMED_MODULES = ("activations", "initializers", "regularizers", "constraints")
CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau")  # ModelCheckpoint is nnrun's own subclass: Keras judges it
_OPAQUE = object()  # a default that is no plain value (an object): no type is read from it
_KINDS = {"POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD", "VAR_POSITIONAL", "KEYWORD_ONLY", "VAR_KEYWORD"}


@dataclass(frozen=True)
class Catalogue:
    """A validated catalogue of one Keras version (`load`)."""

    data: dict[str, Any]

    def parameters(self, section: str, name: str) -> dict[str, inspect.Parameter]:
        """`{name: inspect.Parameter}` of a layer's, optimizer's, loss's or metric's constructor, as
        `names.parameters` reads them from Keras."""
        entry = self.data[section][name]
        return {p[0]: _parameter(p) for p in entry["params"]}

    def unknown(self, module: str, name: str) -> list[str] | None:
        """As `names.unknown_name`: None where Keras resolves `name`; raises `Unsure` where the
        catalogue cannot tell (it lists the names known to resolve, not every one that fails)."""
        named = self.data["named"][module]
        if name in named["accepted"]:
            return None
        raise Unsure(f"{module}: {name!r}")


def installed_version() -> str | None:
    """The installed Keras's version, read from its source without importing it (None when absent)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:
        return None
    try:
        text = (Path(spec.origin).parent / "src" / "version.py").read_text(encoding="utf-8")[:4096]
    except OSError:
        return None
    found = re.search(r'^__version__ = "([\w.+-]+)"', text, re.MULTILINE)
    return found.group(1) if found else None


def cache_path(version: str) -> Path:
    """Where a catalogue made on this machine for Keras `version` is kept."""
    return user_cache.root() / f"keras-catalogue-{version}.json"


def load() -> Catalogue | None:
    """The catalogue of the installed Keras: the shipped one, else this machine's; None where neither fits."""
    version = installed_version()
    if version is None:
        return None
    cached = cache_path(version)
    # A catalogue decides check's verdicts: this machine's is read only where no one else could have written it.
    mine = user_cache.private(cached.parent) and user_cache.private(cached, folder=False)
    for path in (SHIPPED, cached) if mine else (SHIPPED,):
        data = _read(path)
        if data is not None and data.get("keras") == version:
            return Catalogue(data)
    return None


def remember() -> None:
    """Writes this machine's catalogue when Keras is imported and no catalogue matches its version.

    What a command that imported Keras anyway does, so that the next `check` need not.
    """
    if "keras" not in sys.modules or load() is not None:
        return
    from nnrun import atomic

    data = make()
    path = cache_path(data["keras"])
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(data, separators=(",", ":")))
    except OSError:
        pass  # a cache that cannot be written costs the next check time, nothing else


def _read(path: Path) -> dict[str, Any] | None:
    try:
        if path.is_symlink() or path.stat().st_size > MAX_BYTES:
            return None
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return None
    return data if _valid(data) else None


def _valid(data: object) -> bool:
    """The shape `make` writes, checked before anything is read from it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keras"), str):
        return False
    try:
        for section in ("layers", "optimizers", "losses", "metrics", "callbacks"):
            for name, entry in data[section].items():
                _expect(isinstance(name, str) and isinstance(entry["class"], str))
                for p in entry["params"]:
                    _expect(isinstance(p, list) and len(p) in (2, 3) and isinstance(p[0], str) and p[1] in _KINDS)
        for entry in data["layers"].values():
            _expect(isinstance(entry["auto_name"], str) and _strings(entry["own"]))
        for key in ("applications", "metric_names"):
            _expect(_strings(data[key]))
        for key in ("loss_aliases", "metric_aliases", "metric_gets"):
            _expect(all(isinstance(k, str) and isinstance(v, str) for k, v in data[key].items()))
        for module in NAMED_MODULES:
            _expect(_strings(data["named"][module]["public"]) and _strings(data["named"][module]["accepted"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def _expect(condition: bool) -> None:
    if not condition:
        raise ValueError("not a catalogue")


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _parameter(p: list[Any]) -> inspect.Parameter:
    kind = getattr(inspect.Parameter, p[1])
    if len(p) == 2:
        return inspect.Parameter(p[0], kind)
    return inspect.Parameter(p[0], kind, default=_OPAQUE if isinstance(p[2], dict) else p[2])


def _params(params: Mapping[str, inspect.Parameter]) -> list[list[Any]]:
    written = []
    for name, p in params.items():
        entry: list[Any] = [name, p.kind.name]
        if p.default is not p.empty:
            entry.append(_plain(p.default))
        written.append(entry)
    return written


def _plain(value: object) -> object:
    """A default as JSON: plain values as they are (tuples as lists), anything else as an opaque marker."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    return {"opaque": type(value).__name__}


def make() -> dict[str, Any]:
    """The catalogue of the installed Keras, asking it what `build` and `names` ask it.

    Returns:
        The catalogue as JSON-able data.
    """
    from nnrun.backend import keras as _keras
    from nnrun.model import backbones, build, names

    keras = _keras()

    def entries(module, base, exclude=()):
        return {
            n: {"class": cls.__name__, "params": _params(names.parameters(cls))}
            for n, cls in names.classes_in(module, base, exclude).items()
        }

    layers = entries(keras.layers, keras.layers.Layer, build.FORBIDDEN_LAYERS)
    for n, entry in layers.items():
        cls = getattr(keras.layers, n)
        own = inspect.signature(cls.__init__).parameters
        entry["own"] = [key for key in ("input_shape", "input_dim") if key in own]
        entry["auto_name"] = _snake_case(cls.__name__)
    optimizer_exclude = {"Optimizer", "LossScaleOptimizer", "MultiOptimizer"}
    loss_classes = names.classes_in(keras.losses, keras.losses.Loss, exclude={"Loss"})
    metric_classes = names.classes_in(keras.metrics, keras.metrics.Metric, exclude={"Metric"})
    return {
        "format": FORMAT,
        "keras": keras.__version__,
        "layers": layers,
        "applications": backbones.names(),
        "optimizers": entries(keras.optimizers, keras.optimizers.Optimizer, optimizer_exclude),
        "losses": entries(keras.losses, keras.losses.Loss, {"Loss"}),
        "loss_aliases": {a: c.__name__ for a, c in names.aliases_of(keras.losses, loss_classes).items()},
        "metrics": entries(keras.metrics, keras.metrics.Metric, {"Metric"}),
        "metric_aliases": {a: c.__name__ for a, c in names.aliases_of(keras.metrics, metric_classes).items()},
        "metric_names": names.public_names(keras.metrics),
        "metric_gets": _metric_gets(keras, names),
        "callbacks": {
            n: {"class": n, "params": _params(names.parameters(getattr(keras.callbacks, n)))} for n in CALLBACKS
        },
        "named": {module: _named(getattr(keras, module), names) for module in NAMED_MODULES},
    }


def _snake_case(name: str) -> str:
    """The name Keras gives an unnamed layer of a class (`keras.src.utils.naming.to_snake_case`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# Short names Keras knows besides its public ones (`names.aliases_of`'s, and the metrics' `acc`, `rmse`).
_SHORT = ("mse", "mae", "mape", "msle", "kld", "logcosh", "bce", "cce", "acc", "rmse")


def _candidates(public: list[str], names: Any) -> list[str]:
    return sorted({*public, *(names.snake_case(n) for n in public), *(n.lower() for n in public), *_SHORT})


def _named(module: Any, names: Any) -> dict[str, list[str]]:
    public = names.public_names(module)
    accepted = []
    for name in _candidates(public, names):
        try:
            module.get(name)
        except Exception:  # any failure: not a name the light path may accept (Keras judges it)
            continue
        accepted.append(name)
    return {"public": public, "accepted": accepted}


def _metric_gets(keras: Any, names: Any) -> dict[str, str]:
    """Plain metric names `keras.metrics.get` resolves -> the class of the metric it makes ('' for a function)."""
    found = {}
    for name in _candidates(names.public_names(keras.metrics), names):
        try:
            metric = keras.metrics.get(name)
        except Exception:  # any failure: not a name the light path may accept (Keras judges it)
            continue
        found[name] = type(metric).__name__ if isinstance(metric, keras.metrics.Metric) else ""
    return found


def main() -> None:
    """Writes the shipped catalogue from the installed Keras: `python -m nnrun.model.catalogue [PATH]`."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED
    path.write_text(json.dumps(make(), indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{path}: Keras {installed_version()}")


if __name__ == "__main__":
    main()
