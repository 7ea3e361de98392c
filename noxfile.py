"""Sessions: ``nox`` runs the tests on every Python found, lint and typecheck; see each session's docstring.

``nox -s tests`` runs the suite on every Python the package claims that is
on the machine (with pyenv: ``PYENV_VERSION=3.10.13:3.11.7:3.12.1:3.13.0``);
``nox -s floors`` on the lowest versions ``pyproject.toml`` allows;
``nox -s release`` builds, checks and installs the distributions away from
the source tree; ``nox -s docs`` builds the site strictly; ``nox -s bench``
runs the benchmarks.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# uv makes each session's environment in seconds where it is installed (CI installs it); pip otherwise.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False

# Every Python the package claims (pyproject.toml: requires-python >= 3.10).
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent
FLOORS = ROOT / "constraints" / "floors.txt"
# The development toolchain (ruff, mypy, pytest, ...) is locked; runtime dependencies are not.
DEV = ("-c", str(ROOT / "constraints" / "dev.txt"))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite on one Python (``nox -s tests-3.12``); arguments go to pytest."""
    session.install(*DEV, "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def floors(session: nox.Session) -> None:
    """The suite, and the strict type check, on the lowest Python and the lowest versions allowed.

    The floors are pinned in ``constraints/floors.txt``: the package's typing
    must hold on redis-py 5.0.1 as on the newest release (see ``newest``).
    """
    session.install("-c", str(_floors_over_dev(Path(session.create_tmp()))), "-e", ".[test]")
    _pip(session, "check")
    session.run("mypy")
    session.run("pytest", *session.posargs)


def _pip(session: nox.Session, *args: str) -> None:
    """``pip check``, ``pip freeze``...: through uv where it made the environment (uv's have no pip)."""
    if session.venv_backend == "uv":
        session.run("uv", "pip", *args)
    else:
        session.run("python", "-m", "pip", *args)


def _name(line: str) -> str:
    """The package a constraints line pins, normalised (``Foo_Bar==1; marker`` -> ``foo-bar``)."""
    return line.split(";", maxsplit=1)[0].split("==", maxsplit=1)[0].strip().lower().replace("_", "-")


def _floors_over_dev(folder: Path) -> Path:
    """One constraints file: every floor, then the locked toolchain for what the floors leave out.

    A package both files pin (pytest, hypothesis, aioresponses...) takes its floor: pip refuses
    two different pins of one package. The web stack the limiter tests run (FastAPI, Starlette,
    uvicorn, slowapi, limits) is left to resolve around its floors: its newest pins need newer
    OpenTelemetry than the floors allow; so is nox (its newest needs a newer attrs).
    """
    floors = [line for line in FLOORS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    pinned = {_name(line) for line in floors} | {"starlette", "limits", "uvloop", "nox"}
    dev = ROOT / "constraints" / "dev.txt"
    toolchain = [
        line
        for line in dev.read_text().splitlines()
        if line.strip() and not line.startswith("#") and _name(line) not in pinned
    ]
    merged = folder / "floors-and-toolchain.txt"
    merged.write_text("\n".join([*floors, *toolchain]) + "\n")
    return merged


@nox.session(python=PYTHONS[-1])
def newest(session: nox.Session) -> None:
    """Lint, types and the suite with every runtime dependency at its newest release, resolved fresh.

    Upstream drift (a new aiohttp, redis-py or cattrs) shows up here, as a named
    CI step, not in a newcomer's first run. The toolchain stays locked.
    """
    if session.venv_backend == "uv":
        session.install(*DEV, "--upgrade", "--no-cache", "-e", ".[test]")  # uv's --upgrade is eager
    else:
        session.install(*DEV, "--upgrade", "--upgrade-strategy", "eager", "--no-cache-dir", "-e", ".[test]")
    _pip(session, "freeze")
    session.run("mypy")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[-1])
def properties(session: nox.Session) -> None:
    """The call-boundary properties at 2,000 examples per parameter (the suite runs a few of each)."""
    session.install(*DEV, "-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_call_boundary.py",
        *session.posargs,
        env={"SENDKIT_BOUNDARY_EXAMPLES": "2000"},
    )


@nox.session(python=PYTHONS[-1])
def failover(session: nox.Session) -> None:
    """A Sentinel failover with a second worker started at the fault, ten times (the suite runs it twice)."""
    session.install(*DEV, "-e", ".[test]")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_redis_failover.py",
        "-k",
        "started_at or killed_mid_job",
        *session.posargs,
        env={"SENDKIT_FAILOVER_RUNS": "10"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, at the version the toolchain lock pins."""
    session.install(*DEV, "-e", ".[test]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install(*DEV, "-e", ".[test]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site strictly (a broken reference or a missing page fails), then check its reference.

    Every example of the pages runs in the suite (``tests/test_examples_run.py``, the FastAPI one
    included), so not again here.
    """
    session.install(*DEV, "-e", ".[docs,test]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("pytest", "-p", "no:cacheprovider", "tests/test_docs.py", *session.posargs)


@nox.session
def release(session: nox.Session) -> None:
    """Build the sdist and the wheel, ``twine check`` them, install the wheel away from the source tree.

    From an empty folder, in a fresh venv with the extras, it runs the demo
    and a Redis-budget import against a real redis-server (see
    ``tests/release_check.py``).
    """
    session.install("build", "twine")
    dist = Path(tempfile.mkdtemp(prefix="sendkit-dist-"))
    session.run("python", "-m", "build", "--outdir", str(dist))
    built = sorted(str(path) for path in dist.iterdir())
    session.run("twine", "check", "--strict", *built)
    wheel = next(path for path in built if path.endswith(".whl"))
    empty = Path(tempfile.mkdtemp(prefix="sendkit-release-"))
    venv = empty / "venv"
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    session.run(python, "-m", "pip", "install", "-q", f"{wheel}[cli,redis]", external=True)
    check = empty / "release_check.py"
    shutil.copy(ROOT / "tests" / "release_check.py", check)
    with session.chdir(empty):
        session.run(python, str(check), external=True)
    shutil.rmtree(empty)
    shutil.rmtree(dist)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark, or ``nox -s bench -- NAME`` (pacing, shared, limiters, import, client_cost, flow)."""
    session.install("-e", ".[bench]")
    names = session.posargs or ["pacing", "shared", "limiters", "import", "client_cost", "flow"]
    for name in names:
        session.run("python", f"benchmarks/bench_{name}.py", external=False)
