"""The peers' virtual environments: created when missing, reinstalled when their pins change.

``bench/.venv-peers`` holds every peer but arq, plus celeriac from this working tree
(``pip install -e``), psutil, matplotlib and gevent. ``bench/.venv-arq`` holds arq, whose
release pins an older redis-py than the others accept.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
#: Bytecode caches of every benchmark process go here, outside the source tree.
PYCACHE = BENCH / ".venv-pycache"


@dataclass(frozen=True)
class Env:
    name: str
    path: Path
    requirements: Path
    editable_repo: bool  # also install celeriac from the working tree

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def stamp(self) -> str:
        text = self.requirements.read_bytes() + str(self.editable_repo).encode()
        return hashlib.sha256(text).hexdigest()


ENVS = {
    "peers": Env("peers", BENCH / ".venv-peers", BENCH / "requirements-peers.txt", True),
    "arq": Env("arq", BENCH / ".venv-arq", BENCH / "requirements-arq.txt", False),
}


def ensure(env: Env) -> None:
    """Create ``env`` if missing and install its pinned requirements if they changed."""
    stamp_file = env.path / ".bench-stamp"
    if env.python.exists() and stamp_file.exists() and stamp_file.read_text() == env.stamp():
        return
    print(f"[bench] installing {env.name} environment into {env.path} ...", flush=True)
    if not env.python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env.path)
    pip = [str(env.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(env.requirements)], check=True)
    if env.editable_repo:
        subprocess.run([*pip, "--no-deps", "-e", str(REPO)], check=True)
    stamp_file.write_text(env.stamp())


def freeze(env: Env) -> list[str]:
    """``pip freeze`` of ``env``, for the record."""
    out = subprocess.run(
        [str(env.python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every driver (and so every worker): bytecode caches on, kept in bench/."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra or {})
    return env


def warm_bytecode(env: Env) -> None:
    """Compile the environment's packages (and celeriac) into the cache, so start-up is real."""
    paths = [str(p) for p in (env.path / "lib").glob("python3*/site-packages")]
    if env.editable_repo:
        paths.append(str(REPO / "celeriac"))
    subprocess.run(
        [str(env.python), "-m", "compileall", "-q", "-j", "0", *paths],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        check=False,
    )
