"""The documentation site builds strictly, and its reference names every public name and command.

Runs where the ``docs`` extra is installed (``nox -s docs``, which CI runs);
skipped elsewhere.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import sendkit_async
import sendkit_async.testing

ROOT = Path(__file__).parent.parent

pytest.importorskip("mkdocs", reason="the docs extra is not installed")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    return out


def _anchors(page: Path) -> set[str]:
    return set(re.findall(r'id="([\w.]+)"', page.read_text()))


def test_every_exported_name_has_its_entry_in_the_api_reference(site):
    import sendkit_async.budget  # noqa: PLC0415
    import sendkit_async.bulk  # noqa: PLC0415
    import sendkit_async.transport  # noqa: PLC0415

    anchors = _anchors(site / "reference" / "api" / "index.html")
    names = {anchor.rsplit(".", 1)[-1] for anchor in anchors}
    public = {*sendkit_async.__all__, *sendkit_async.budget.__all__, *sendkit_async.transport.__all__}
    # The bulk module's types (its constants, helpers and engine parts are for the CLI and the engine).
    public |= {name for name in sendkit_async.bulk.__all__ if name[0].isupper() and not name.isupper()}
    missing = sorted(public - names - {"__version__", "REDIS_URL_SCHEMES"} - BULK_INTERNALS)
    assert not missing


BULK_INTERNALS = {"Concurrency", "Holder", "ImportJob", "JobStore", "UnreadableItem"}


def test_every_testing_helper_has_its_entry(site):
    anchors = _anchors(site / "reference" / "testing" / "index.html")
    names = {anchor.rsplit(".", 1)[-1] for anchor in anchors}
    assert not sorted(set(sendkit_async.testing.__all__) - names)


def test_every_cli_command_and_option_is_in_the_cli_reference(site):
    from click import Group  # noqa: PLC0415

    from sendkit_async.cli._app import cli  # noqa: PLC0415

    text = (site / "reference" / "cli" / "index.html").read_text()

    def walk(group: Group, prefix: str) -> None:
        for name, command in group.commands.items():
            assert f"{prefix} {name}" in text
            for param in command.params:
                for flag in getattr(param, "opts", []):
                    if flag.startswith("--"):
                        assert flag in text, (name, flag)
            if isinstance(command, Group):
                walk(command, f"{prefix} {name}")

    walk(cli, "sendkit-async")


def _text(page: Path) -> str:
    """A page's words: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_every_call_of_client_dnc_and_client_inbox_is_documented_as_it_is_called(site):
    page = site / "reference" / "api" / "index.html"
    anchors = _anchors(page)
    for resource in (sendkit_async.client.DncAPI, sendkit_async.client.InboxAPI, sendkit_async.SendKit):
        for name in dir(resource):
            if name.startswith("_") or not callable(getattr(resource, name)):
                continue
            where = "sendkit_async" if resource is sendkit_async.SendKit else "sendkit_async.client"
            assert f"{where}.{resource.__name__}.{name}" in anchors, (resource.__name__, name)
    # Bound as they are called: no session parameter in the signature.
    text = _text(page)
    start = text.index("import_entries(")
    assert "session" not in text[start : text.index(")", start)]


def test_every_model_field_is_in_the_reference(site):
    anchors = _anchors(site / "reference" / "api" / "index.html")
    for name in sendkit_async.__all__:
        exported = getattr(sendkit_async, name)
        if isinstance(exported, type) and attrs.has(exported):
            for field in attrs.fields(exported):
                if not field.name.startswith("_"):
                    assert f"sendkit_async.{name}.{field.name}" in anchors, (name, field.name)


def test_no_raw_role_or_literal_and_no_private_base_survives(site):
    for page in (site / "reference").rglob("*.html"):
        text = _text(page)
        assert not re.search(r":(class|mod|func|meth|attr|exc|data):`", text), page
        assert "``" not in text, page
        assert not re.search(r"Bases:\s*\S*\b_[A-Z]", text), page


def test_the_cli_reference_shows_real_defaults(site):
    text = _text(site / "reference" / "cli" / "index.html")
    assert "Sentinel" not in text
    assert "UNSET" not in text
    assert "N/A" not in text
    assert "[default: 10000" in text  # --batch-size, as --help shows it
