"""A PostgreSQL server of the tests' own: PostgreSQL's programs from the pgserver wheel (the test extras), on a
loopback port with a password, in a temporary folder; stopped and removed at the end."""

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def programs():
    """PostgreSQL's programs from the pgserver wheel, or None. Found, not imported: importing pgserver makes a
    runtime folder and warns when XDG_RUNTIME_DIR is unset; its own start adds a system user when run as root."""
    spec = importlib.util.find_spec("pgserver")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" if spec else None


@contextlib.contextmanager
def server(password, user="nnrun"):
    """Starts a server; yields its URL (`postgresql://user:password@127.0.0.1:PORT/postgres`)."""
    bin_dir = programs()
    # Not under pytest's tmp_path, whose folders only root may enter: PostgreSQL refuses to run as root, and
    # runs here as nobody.
    root = Path(tempfile.mkdtemp(prefix="nnrun-pg-"))
    run_as = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid}
        # Copied (30 MB, a tenth of a second) where nobody may run them, as the wheel lays them out (the
        # programs find their libraries at ../../../pgserver.libs): a checkout may be under /root.
        site, copy = bin_dir.parents[2], root / "pg"
        shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs")
        for part in ("bin", "lib", "share"):
            shutil.copytree(bin_dir.parent / part, copy / "pgserver" / "pginstall" / part)
        bin_dir = copy / "pgserver" / "pginstall" / "bin"
    (root / "pw").write_text(password)
    (root / "pw").chmod(0o644)
    data = root / "data"

    def pg(*args):
        return subprocess.run([str(bin_dir / args[0]), *args[1:]], check=True, capture_output=True, **run_as)

    try:
        pg("initdb", "-D", data, "-U", user, f"--pwfile={root / 'pw'}", "--auth=scram-sha-256", "--no-sync")
        (root / "pw").unlink()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg("pg_ctl", "-D", data, "-l", root / "log", "-w", "-t", "60", "-o", options, "start")
        try:
            yield f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres"
        finally:
            pg("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
