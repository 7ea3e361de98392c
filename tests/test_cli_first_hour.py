"""What a newcomer meets first on the command line: fast, one-line failures, honest files and bars."""

from __future__ import annotations

import io
import sys

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from sendkit_async import APIConnectionError, SendKit, TransportError
from sendkit_async.bulk import ImportAbortedError, ImportProgress
from sendkit_async.cli._app import cli
from sendkit_async.cli._input import InputFile
from sendkit_async.cli._output import ImportDisplay, plural
from sendkit_async.testing import FakeClock, MockTransport, json_response

from .conftest import KEY, free_port
from .test_cli import ThreadedFake, invoke, write


@pytest.fixture
def server(monkeypatch):
    with ThreadedFake(seed=0) as fake:
        monkeypatch.setenv("SENDKIT_API_KEY", fake.api_key)
        monkeypatch.setenv("SENDKIT_BASE_URL", fake.url)
        yield fake


@pytest.mark.slow  # the first batch's real retry schedule, about 5 s
def test_an_import_against_a_dead_port_stops_within_seconds_with_one_line_naming_the_host(
    monkeypatch, tmp_path
):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("SENDKIT_API_KEY", "sk_" + "a" * 24)
    monkeypatch.setenv("SENDKIT_BASE_URL", f"http://127.0.0.1:{port}")
    rows = "".join(f"u{number}@example.com\n" for number in range(50_000))
    result = CliRunner().invoke(cli, ["dnc", "import", write(tmp_path / "big.txt", rows)])
    assert result.exit_code == 1
    assert result.stdout == ""  # no table of 50,000 failures
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "connect" in lines[0].lower()


def test_a_key_the_server_refuses_exits_2_with_one_line_and_no_table(server, monkeypatch, tmp_path):
    secret = "sk_wrong_key_SECRET_123"
    monkeypatch.setenv("SENDKIT_API_KEY", secret)
    result = CliRunner().invoke(cli, ["dnc", "import", write(tmp_path / "a.txt", "a@example.com\n")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "401" in result.stderr
    assert secret not in result.stderr
    # No retries of a bad key: the rate probe (a hint, whatever it meets) and the one import.
    assert server.stats.by_route["POST /v1/dnc/import"] == 1
    assert set(server.stats.by_status) == {401}
    assert CliRunner().invoke(cli, ["dnc", "list"]).exit_code == 2


@pytest.mark.parametrize("name", ["out.xlsx", "out.json", "out.parquet.gz"])
def test_export_refuses_a_file_format_it_does_not_write_before_sending(server, tmp_path, name):
    result = CliRunner().invoke(cli, ["dnc", "export", str(tmp_path / name)])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
    assert not (tmp_path / name).exists()
    assert server.stats.requests == 0


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz", "out", "out.jsonl", "out.ndjson", "out.txt"])
def test_export_writes_the_formats_it_names(server, tmp_path, name):
    server.add_dnc(["a@example.com"])
    assert invoke("dnc", "export", str(tmp_path / name)).exit_code == 0
    assert (tmp_path / name).stat().st_size > 0


@pytest.mark.usefixtures("server")
def test_an_empty_export_to_csv_still_has_its_header(tmp_path):
    assert invoke("dnc", "export", str(tmp_path / "empty.csv")).exit_code == 0
    assert (tmp_path / "empty.csv").read_text().splitlines() == ["email,type,reason,created_at,id"]
    listed = invoke("dnc", "list", "--format", "csv")
    assert listed.stdout.splitlines() == ["email,type,reason,created_at,id"]


def test_the_rejects_file_must_be_named_as_csv(server, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "dnc",
            "import",
            write(tmp_path / "a.txt", "a@example.com\n"),
            "--rejects",
            str(tmp_path / "r.xlsx"),
        ],
    )
    assert result.exit_code == 2
    assert server.stats.requests == 0


def test_the_missing_extra_hint_keeps_its_square_brackets(monkeypatch):
    monkeypatch.setitem(sys.modules, "sendkit_async._budget._redis", None)  # as if redis-py were absent
    monkeypatch.setenv("SENDKIT_API_KEY", "sk_" + "a" * 24)
    result = CliRunner().invoke(cli, ["--redis", "redis://localhost:1/0", "dnc", "list"])
    assert result.exit_code == 2
    assert "pip install 'sendkit-async[redis]'" in result.stderr


def _snapshot(read: int, batches: int, *, retries: int = 0, rate_limited: int = 0) -> ImportProgress:
    return ImportProgress(
        read=read,
        rejected=0,
        duplicates=0,
        imported=read,
        skipped=0,
        failed=0,
        batches=batches,
        requests=batches + retries,
        retries=retries,
        rate_limited=rate_limited,
        elapsed=2.0,
        concurrency=4,
    )


async def test_the_progress_bar_counts_acknowledged_entries_fits_80_columns_and_pluralises(tmp_path):
    rows = "".join(f"u{number}@example.com\n" for number in range(20_001))
    source = InputFile(write(tmp_path / "in.txt", rows))
    read = [entry async for entry in source.entries()]  # the whole file read ahead of the sends
    assert len(read) == 20_001

    def shown(width: int, *snapshots: ImportProgress) -> list[str]:
        screen = io.StringIO()
        console = Console(file=screen, width=width, force_terminal=True, color_system=None)
        display = ImportDisplay(console, source, enabled=True)
        with display.running():
            for snapshot in snapshots:
                display.update(snapshot)
                task = display._progress.tasks[0]
                assert (task.completed, task.total) == (snapshot.read, 20_001)  # acknowledged, not read
                display._progress.refresh()
        return [click.unstyle(line) for line in screen.getvalue().replace("\r", "\n").splitlines()]

    lines = shown(80, _snapshot(10_000, 1), _snapshot(20_001, 3, retries=1, rate_limited=12_345))
    assert all(len(line) <= 80 for line in lines)
    assert any("10,000 done" in line and "1 batch ·" not in line and " 1 batch" in line for line in lines)
    assert not any("1 batches" in line for line in lines)
    assert any(" 50% " in line for line in lines)
    wide = shown(160, _snapshot(20_001, 3, retries=1, rate_limited=12_345))
    assert any("3 batches · 1 retry · 12,345 429s" in line for line in wide)


def test_plural_agrees_with_its_count():
    assert [plural(count, "batch", "batches") for count in (0, 1, 2, 1000)] == [
        "0 batches",
        "1 batch",
        "2 batches",
        "1,000 batches",
    ]


def test_every_option_of_every_command_has_help_and_fake_server_is_a_click_command():
    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, (path, param.opts)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")

    walk(cli, "sendkit-async")
    fake_server = cli.commands["fake-server"]
    assert {"--rate-limit", "--limiter", "--refusal-status", "--extra-window"} <= {
        flag for param in fake_server.params for flag in getattr(param, "opts", [])
    }


def test_fake_server_options_are_checked_by_click():
    result = CliRunner().invoke(cli, ["fake-server", "--fail-rate", "2"])
    assert result.exit_code == 2
    assert "--fail-rate" in result.stderr
    bad_window = CliRunner().invoke(cli, ["fake-server", "--extra-window", "lots"])
    assert bad_window.exit_code == 2
    assert "LIMIT/SECONDS" in bad_window.stderr


@pytest.mark.parametrize("connected", [False, True], ids=["cannot connect", "connection dropped"])
async def test_a_job_whose_server_never_answers_stops_only_when_it_cannot_connect(connected):
    clock = FakeClock()
    sent: list[str] = []

    def handler(request):
        sent.append(request.url.path)
        raise TransportError("no way through", connected=connected)

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler)) as client:
        entries = [f"u{i}@example.com" for i in range(50_000)]
        if connected:  # the server was reached: each batch fails on its own, and the job goes on
            report = await client.dnc.import_bulk(entries, concurrency=1)
            assert len(report.failed) == 50_000
            assert report.batches == 5
            return
        with pytest.raises(ImportAbortedError) as raised:
            await client.dnc.import_bulk(entries, concurrency=1)
    assert isinstance(raised.value.__cause__, APIConnectionError)
    assert raised.value.__cause__.connected is False
    report = raised.value.report
    assert report.balanced
    assert report.imported == 0
    assert sent.count("/v1/dnc/import") == 1 + 5  # the first batch's attempts, then the stop


async def test_once_the_server_has_answered_a_refused_connection_fails_only_its_batch():
    calls = {"import": 0}

    def handler(request):
        if request.url.path == "/v1/dnc/import":
            calls["import"] += 1
            if calls["import"] > 1:
                raise TransportError("refused", connected=False)
        return json_response(200, {"success": True, "data": {"imported": 1, "skipped": 0}})

    async with SendKit(api_key=KEY, clock=FakeClock(), transport=MockTransport(handler)) as client:
        report = await client.dnc.import_bulk(
            [f"u{i}@example.com" for i in range(3)], batch_size=1, concurrency=1, max_retries=0
        )
    assert report.imported == 1
    assert len(report.failed) == 2
