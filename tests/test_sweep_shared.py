"""nnrun sweep on a study shared by several machines: a real PostgreSQL server, URLs that keep their password.

The machines are processes in working directories of their own; the server is
PostgreSQL from the pgserver wheel (the test extras, `tests/postgres.py`),
started here on a loopback port with a password, and stopped at the end.
"""

import csv
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nnrun.cli.main import cli

import postgres as postgres_server
from conftest import TINY

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("optuna") is None, reason="the sweep extra: pip install 'nnrun[sweep]'"
    ),
    pytest.mark.any_backend,  # a sweep's bookkeeping, the same on both backends
]

ENV = "NNRUN_SWEEP_STORAGE"
PASSWORD = f"pw-{secrets.token_hex(8)}"  # looked for in every file and every line the sweeps write
SWEEP = {
    "metric": "val_accuracy",
    "trials": 6,
    "seed": 3,
    "parameters": {
        "optimizer.learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        "model.layers.0.Dense.units": [4, 8, 16],
    },
}
# The machines' sweeps hear a trial's heartbeat every half second and take one silent for 4 s for cut off
# (60 s by default): the test waits seconds, not a minute.
FAST_HEARTBEAT = "import nnrun.sweep.heartbeat as h; h.INTERVAL_S = 0.5; h.GRACE_S = 4.0"


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of this session, on a loopback port with password authentication; yields its URL."""
    if postgres_server.programs() is None:
        pytest.skip("PostgreSQL comes with the test extras: pip install -e '.[test]'")
    with postgres_server.server(PASSWORD) as url:
        yield url


def machine(tmp_path, name, **sweep):
    """A machine's working directory with the sweep's config, `sweep` updated (its runs go to its own runs/)."""
    home = tmp_path / name
    home.mkdir()
    config = {**TINY, "training": {"epochs": 1, "batch_size": 16}, "output": {"name": "shared"}}
    (home / "tiny.yaml").write_text(yaml.safe_dump({**config, "sweep": {**SWEEP, **sweep}}, sort_keys=False))
    return home


def sweep(home, url):
    """`nnrun sweep tiny.yaml` in a machine's working directory, the URL in the environment."""
    code = f"{FAST_HEARTBEAT}\nfrom nnrun.cli.main import main\nmain()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "sweep", "tiny.yaml"],
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, ENV: url, "PYTHONUNBUFFERED": "1"},
    )


def trials(url, name="shared"):
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def table(sweep_dir):
    with open(sweep_dir / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def kill_mid_trial(proc, home, url, timeout=180):
    """Kills (SIGKILL) a machine's sweep while a trial of its own trains (its run begun), once it has completed one.

    Seen so, it is stopped (SIGSTOP) and the study read again, so that the trial seen running cannot end
    before the kill. Returns the trial cut off.
    """

    def cut_off():
        mine = [t for t in trials(url) if (t.user_attrs.get("process") or {}).get("pid") == proc.pid]
        running = [
            t
            for t in mine
            if t.state.name == "RUNNING" and list(home.glob(f"runs/*/trials/trial-{t.number + 1:03d}-*/run.json"))
        ]
        return running[0] if running and any(t.state.name == "COMPLETE" for t in mine) else None

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}):\n{proc.communicate()[1][-3000:]}")
        # Once its sweep directory is made, the study's tables are (the test makes none of its own).
        if list(home.glob("runs/*/sweep.json")) and cut_off():
            proc.send_signal(signal.SIGSTOP)
            trial = cut_off()
            if trial:
                proc.kill()
                proc.communicate()
                return trial
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the sweep never ran a second trial")


@pytest.mark.slow
def test_two_machines_finish_one_sweep_on_postgresql_and_one_recovers_the_other_ones_cut_off_trial(
    postgres, tmp_path, runner
):
    import sqlalchemy

    from nnrun.errors import ConfigError
    from nnrun.sweep import storage

    # What check tries of the server: a wrong password is one masked line; the right one makes nothing there.
    wrong = postgres.replace(f":{PASSWORD}@", ":wrong-password@")
    with pytest.raises(ConfigError, match='password authentication failed for user "nnrun"') as refused:
        storage.probe(storage.Storage(wrong, storage.FLAG))
    assert "wrong-password" not in str(refused.value) and "postgresql://nnrun:***@127.0.0.1" in str(refused.value)

    def tables():
        engine = sqlalchemy.create_engine(postgres)
        try:
            return sqlalchemy.inspect(engine).get_table_names()
        finally:
            engine.dispose()

    before = tables()
    storage.probe(storage.Storage(postgres, storage.FLAG))
    assert tables() == before

    a, b = machine(tmp_path, "machine-a"), machine(tmp_path, "machine-b")
    first, second = sweep(a, postgres), sweep(b, postgres)
    cut_off = kill_mid_trial(first, a, postgres)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    (b_dir,) = (b / "runs").glob("shared-sweep-*")
    assert out == f"runs/{b_dir.name}\n"
    host = socket.gethostname()
    assert f"trial {cut_off.number + 1} (on {host}) stopped sending its heartbeat: it runs again" in err

    study = {t.number: t for t in trials(postgres)}
    counted = [t for t in study.values() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(counted) == 6, [(t.number, t.state.name, t.user_attrs) for t in study.values()]
    assert study[cut_off.number].state.name == "FAIL" and study[cut_off.number].user_attrs["interrupted"]
    (retry,) = [t for t in study.values() if t.user_attrs.get("retry_of") == cut_off.number + 1]
    assert retry.params == cut_off.params and retry.state.name == "COMPLETE"
    assert retry.user_attrs["sweep_dir"] == str(b_dir), "run again by the other machine"
    # Each machine ran trials, and keeps their runs.
    (a_dir,) = (a / "runs").glob("shared-sweep-*")
    ran_in = {t.user_attrs.get("sweep_dir") for t in counted}
    assert ran_in == {str(a_dir), str(b_dir)}

    # The table shows the whole study: where each run is, on which host.
    rows = table(b_dir)
    assert len(rows) == 7 and sum(r["state"] == "interrupted" for r in rows) == 1
    assert {r["host"] for r in rows} == {host}
    for row in rows:
        if row["state"] == "interrupted":  # cut off before its run was recorded: on its machine, by its name
            assert row["run_dir"] == "" and int(row["trial"]) == cut_off.number + 1
            (killed_run,) = a_dir.glob(f"trials/trial-{cut_off.number + 1:03d}-*")
            continue
        ours = row["run_dir"].startswith("trials/")
        run = b_dir / row["run_dir"] if ours else Path(row["run_dir"])
        assert ours or run.parent.parent == a_dir, row
        assert json.loads((run / "run.json").read_text())["status"] == "completed", row

    # The killed machine's sweep, continued, has nothing left to run, and shows the same study and best config.
    continued = runner.invoke(cli, ["sweep", str(a_dir)], env={ENV: postgres})
    assert continued.exit_code == 0, continued.output
    assert "all 6 trials are done" in continued.stderr
    best_a, best_b = (json.loads((d / "sweep.json").read_text())["best"] for d in (a_dir, b_dir))
    assert {k: best_a[k] for k in ("trial", "value", "params")} == {k: best_b[k] for k in ("trial", "value", "params")}
    assert [r["trial"] for r in table(a_dir)] == [r["trial"] for r in rows]
    config_of = lambda d: [line for line in (d / "best.yaml").read_text().splitlines() if not line.startswith("#")]  # noqa: E731
    assert config_of(a_dir) == config_of(b_dir)
    # Its killed trial's run is not offered to resume: its point ran again elsewhere.
    assert json.loads((killed_run / "run.json").read_text())["retried_as_trial"] == retry.number + 1

    # The password is in no file of either machine and in nothing either printed; the sweep directories
    # record the URL without it, and show it masked.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in out + err + continued.output
    recorded = yaml.safe_load((b_dir / "config.yaml").read_text())["sweep"]["storage"]
    assert recorded == postgres.replace(f":{PASSWORD}", "")
    assert json.loads((b_dir / "sweep.json").read_text())["storage"] == postgres.replace(PASSWORD, "***")


@pytest.mark.parametrize(
    "url, shown, recorded",
    [
        (
            "postgresql://nnrun:s3cret@db.example:5432/optuna",
            "postgresql://nnrun:***@db.example:5432/optuna",
            "postgresql://nnrun@db.example:5432/optuna",
        ),
        (  # a password with characters a URL must escape
            "postgresql+psycopg://nnrun:p%40ss%2Fw0rd@db/optuna",
            "postgresql+psycopg://nnrun:***@db/optuna",
            "postgresql+psycopg://nnrun@db/optuna",
        ),
        (  # libpq takes one in the query string too
            "postgresql://nnrun@db/optuna?sslmode=require&password=s3cret",
            "postgresql://nnrun@db/optuna?sslmode=require&password=***",
            "postgresql://nnrun@db/optuna?sslmode=require",
        ),
        ("postgresql://nnrun@db/optuna", "postgresql://nnrun@db/optuna", "postgresql://nnrun@db/optuna"),
        ("sqlite:////shared/study.db", "sqlite:////shared/study.db", "sqlite:////shared/study.db"),
        ("postgresql://nnrun:s3cret@db:port/optuna", "postgresql://***@db:port/optuna", None),  # not SQLAlchemy's
    ],
)
def test_a_url_is_shown_masked_and_recorded_without_its_password(url, shown, recorded):
    from nnrun.sweep import storage

    assert storage.masked(url) == shown
    assert storage.without_password(url) == (recorded or shown)
    given = storage.Storage(url, storage.FLAG)
    assert repr(given) == f"Storage({shown!r}, place='--storage')"
    # A driver's error that would echo the password (none seen to) has it masked too.
    secret = {"s3cret": "s3cret", "%40": "p@ss/w0rd"}.get(next((k for k in ("s3cret", "%40") if k in url), ""))
    if secret:
        assert given.scrub(f"FATAL: password {secret} refused") == "FATAL: password *** refused"


def test_the_flag_wins_over_the_environment_which_wins_over_the_config(tmp_path):
    from nnrun.errors import ConfigError
    from nnrun.sweep.storage import Storage, choose, of_sweep

    flag, env, config = "postgresql://f@db/a", "postgresql://e:pw@db/a", "postgresql://c@db/a"
    assert choose(flag, config, {ENV: env}) == Storage(flag, "--storage")
    assert choose(None, config, {ENV: env}) == Storage(env, f"${ENV}")
    assert choose(None, config, {}, place="tiny.yaml: sweep.storage") == Storage(config, "tiny.yaml: sweep.storage")
    assert choose(None, None, {ENV: ""}) == Storage(None, "sweep.storage") and not choose(None, None, {}).shared

    # A sweep continues on the database its directory records; the flag or the variable bring the password.
    recorded = "postgresql://e@db/a"
    assert of_sweep(tmp_path, None, recorded, {ENV: env}) == Storage(env, f"${ENV}")
    assert of_sweep(tmp_path, None, recorded, {}) == Storage(recorded, f"{tmp_path}: sweep.storage")
    with pytest.raises(ConfigError) as other:
        of_sweep(tmp_path, "postgresql://e:pw@elsewhere/a", recorded, {})
    assert str(other.value) == (
        f"--storage: postgresql://e:***@elsewhere/a is not the database of the sweep {tmp_path}, whose study is in "
        "postgresql://e@db/a"
    )
    # A sweep of its own study.db: the variable is for other sweeps; a flag is refused.
    assert of_sweep(tmp_path, None, None, {ENV: env}) == Storage(None, "sweep.storage")
    with pytest.raises(ConfigError, match=f"--storage: the sweep {tmp_path} keeps its study in its own study.db"):
        of_sweep(tmp_path, flag, None, {})


FAILING = [
    (
        "flag",
        "postgresql://nnrun:s3cret@127.0.0.1:1/optuna",
        "--storage: postgresql://nnrun:***@127.0.0.1:1/optuna: cannot open the study's database: connection "
        'failed: connection to server at "127.0.0.1", port 1 failed: Connection refused',
    ),
    ("env", "nodb://nnrun:s3cret@db/optuna", f"${ENV}: nodb://nnrun:***@db/optuna: SQLAlchemy knows no database"),
    ("flag", "postgres://nnrun:s3cret@db/optuna", "knows no database 'postgres'; write postgresql://"),
    (
        "env",
        "mysql+pymysql://nnrun:s3cret@db/optuna",
        "needs the database driver pymysql, which is not installed; pip install 'PyMySQL'",
    ),
    (
        "config",
        "mysql+pymysql://nnrun:s3cret@db/optuna",
        "tiny.yaml: sweep.storage: mysql+pymysql://nnrun:***@db/optuna: needs the database driver pymysql, "
        "which is not installed; pip install 'PyMySQL'",
    ),
    ("config", "postgresql://nnrun:s3cret@db:port/x", "tiny.yaml: sweep.storage: postgresql://***@db:port/x: not a"),
    ("config", "s3cret", "tiny.yaml: sweep.storage: expected a database URL such as postgresql://user@host/db"),
    ("flag", "sqlite:///no/such/folder/study.db", "--storage: sqlite:///no/such/folder/study.db: no folder"),
]


@pytest.mark.parametrize("command", ["sweep", "check"])
@pytest.mark.parametrize("how, url, message", FAILING)
def test_a_database_that_fails_is_named_in_one_line_by_sweep_and_by_check_before_anything_is_made(
    runner, tmp_path, monkeypatch, command, how, url, message
):
    if "pymysql" in url and importlib.util.find_spec("pymysql"):
        pytest.skip("PyMySQL is installed")
    home = machine(tmp_path, "m", **({"storage": url} if how == "config" else {}))
    monkeypatch.chdir(home)
    args = [command, "tiny.yaml", *(["--storage", url] if how == "flag" else [])]
    result = runner.invoke(cli, args, env={ENV: url if how == "env" else ""})
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert message in line and "s3cret" not in line, line
    assert not (home / "runs").exists(), "no sweep directory"


def test_check_makes_nothing_in_a_database_it_reaches(runner, tmp_path, monkeypatch):
    import optuna

    from nnrun.sweep import storage

    home = machine(tmp_path, "m")
    monkeypatch.chdir(home)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    storage.probe(storage.Storage(url, storage.FLAG))
    assert not (tmp_path / "shared.db").exists(), "no file made"
    optuna.create_study(storage=url, study_name="other")
    before = (tmp_path / "shared.db").read_bytes()
    result = runner.invoke(cli, ["check", "tiny.yaml"], env={ENV: url})
    assert result.exit_code == 0, result.output
    assert f"sweep storage: {url} (${ENV})" in result.output
    assert (tmp_path / "shared.db").read_bytes() == before, "no study nor table made"
    result = runner.invoke(cli, ["check", "tiny.yaml", "--set", "sweep=null", "--storage", url])
    assert result.exit_code == 2 and "--storage: tiny.yaml has no sweep section" in result.output


def test_sweeps_that_share_a_study_recover_a_silent_trial_once_and_refuse_another_search(tmp_path, monkeypatch):
    import optuna

    from nnrun.config import loading
    from nnrun.errors import ConfigError
    from nnrun.reporter import Reporter
    from nnrun.sweep import heartbeat, study
    from nnrun.sweep.storage import Storage

    # Two machines' sweep directories on one study (a SQLite file stands in for the server here).
    shared = Storage(f"sqlite:///{tmp_path / 'shared.db'}", "--storage")
    config = loading.load(machine(tmp_path, "home") / "tiny.yaml")
    dirs = [tmp_path / "a", tmp_path / "b"]
    studies = [study.open_study(d, config, storage=shared) for d in dirs]
    assert studies[0].study_name == "shared" and studies[0].user_attrs[study.SPACE_ATTR]["metric"] == "val_accuracy"

    # Machine a's trial, with a heartbeat that stops (its machine died).
    lost = studies[0].ask()
    lost.suggest_float("optimizer.learning_rate", 1e-3, 1e-1, log=True)
    lost.suggest_categorical("model.layers.0.Dense.units", [4, 8, 16])
    lost.set_user_attr("sweep_dir", str(dirs[0]))
    monkeypatch.setattr(heartbeat, "INTERVAL_S", 0.05)
    with heartbeat.beating(studies[0], lost):
        time.sleep(0.3)
    assert studies[1].trials[0].user_attrs["heartbeat"] >= 2

    monkeypatch.setattr(heartbeat, "GRACE_S", 0.2)
    watches = [heartbeat.Watch(), heartbeat.Watch()]
    reports = [Reporter(quiet=True), Reporter(quiet=True)]
    for k in (0, 1):  # each sees it first running...
        assert study.recover_silent(studies[k], dirs[k], config.sweep, reports[k], watches[k]) == 0
    time.sleep(0.25)
    # ...then both take it for cut off: one recovers it.
    found = [study.recover_silent(studies[k], dirs[k], config.sweep, reports[k], watches[k]) for k in (1, 0)]
    assert found == [1, 0]
    trials = studies[0].get_trials()
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["interrupted"]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert retry.state.name == "WAITING" and retry.system_attrs["fixed_params"] == lost.params

    # A sweep that would join it with another search is refused, naming the study and what differs.
    other = config.model_copy(update={"sweep": config.sweep.model_copy(update={"metric": "val_loss"})})
    with pytest.raises(ConfigError) as refused:
        study.open_study(tmp_path / "c", other, storage=shared)
    assert str(refused.value).startswith(f"--storage: {shared.url}: its study 'shared' searches another sweep.metric")
    assert isinstance(optuna.load_study(study_name="shared", storage=shared.url), optuna.Study)


def test_a_trial_never_carries_the_storage_into_its_run_or_mlflow(write_config):
    from nnrun.config import loading
    from nnrun.sweep.trial import trial_config

    config = loading.load(write_config(sweep={**SWEEP, "storage": "postgresql://nnrun:s3cret@db/optuna"}))
    trial = trial_config(config, {"optimizer.learning_rate": 0.01}, "trials", "trial-001")
    assert trial.sweep is None and "s3cret" not in trial.model_dump_json()


def test_a_shared_studys_time_budget_counts_from_its_first_start_on_any_machine(tmp_path):
    from nnrun.config import loading
    from nnrun.sweep import study
    from nnrun.sweep.storage import Storage

    shared = Storage(f"sqlite:///{tmp_path / 'shared.db'}", "--storage")
    config = loading.load(machine(tmp_path, "home", trials=None, time_budget="10m") / "tiny.yaml")
    first, joining = (study.open_study(tmp_path / d, config, storage=shared) for d in "ab")
    assert study.deadline_of(first, config.sweep, 1000.0, 0.0, shared=True) == 1600.0
    # A machine that joins later, or a sweep continued after a break, stops where the first would.
    assert study.deadline_of(joining, config.sweep, 1300.0, 0.0, shared=True) == 1600.0
    # In a sweep directory's own study, the budget is the time its runs used.
    assert study.deadline_of(first, config.sweep, 5000.0, 200.0, shared=False) == 5400.0


def test_a_short_password_is_masked_only_where_it_stands_alone():
    from nnrun.sweep import storage

    given = storage.Storage("postgresql://u:e@127.0.0.1:1/x", storage.FLAG)
    refused = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    assert given.scrub(refused) == refused  # not 'conn***ction', which would also say what the password is
    assert given.scrub("password e refused") == "password *** refused"


def test_sweeps_racing_to_make_a_new_sqlite_study_s_tables_try_again(tmp_path, monkeypatch):
    import optuna
    import sqlalchemy.exc

    from nnrun.sweep import storage

    made = optuna.storages.RDBStorage
    tries = []

    def racing(url, **kwargs):  # what the sweep that lost the race sees, once
        tries.append(url)
        if len(tries) == 1:
            lost = Exception("table study_directions already exists")
            raise sqlalchemy.exc.OperationalError("CREATE TABLE", {}, lost)
        return made(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    given = storage.Storage(f"sqlite:///{tmp_path / 'study.db'}", storage.FLAG)
    with storage.opened(given) as database:
        assert database.get_all_studies() == []
    assert len(tries) == 2
