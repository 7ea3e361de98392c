"""Sessions: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` runs the benchmarks."""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# Every Python the package claims; with pyenv, make them all visible with
# PYENV_VERSION=3.10.13:3.11.7:3.12.1:3.13.0 nox -s tests
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """``nox -s bench`` runs every benchmark; ``nox -s bench -- pacing`` (or shared, import, flow) one."""
    session.install("-e", ".[bench]")
    names = session.posargs or ["pacing", "shared", "import", "client_cost", "flow"]
    for name in names:
        session.run("python", f"benchmarks/bench_{name}.py", external=False)
