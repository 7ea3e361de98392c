"""Real export files import as a person expects (generated here, shaped like the tools' own)."""

import json

import pytest
from click.testing import CliRunner

from sendkit_async.cli._app import cli

from .test_cli import server  # noqa: F401 - the fixture

ROWS = 40


def run(*args):
    return CliRunner().invoke(cli, ["dnc", "import", *map(str, args), "--json"], catch_exceptions=False)


def imported(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["imported"]


def addresses(n=ROWS):
    return [f"Person.{i}@Example.com" for i in range(n)]


EXPORTS = {
    "mailchimp, every field quoted": (
        '"Email Address","First Name","Last Name","MEMBER_RATING"\n'
        + "".join(f'"{a}","Ann","Lee","2"\n' for a in addresses())
    ),
    "hubspot": "Record ID,First Name,Email,Lifecycle Stage\n"
    + "".join(f"{i},Bo,{a},lead\n" for i, a in enumerate(addresses())),
    "one column headed Email Address": "Email Address\n" + "".join(f"{a}\n" for a in addresses()),
    "E-Mail with commas": "E-Mail,Name\n" + "".join(f"{a},Cy\n" for a in addresses()),
    "tab separated": "name\temail\n" + "".join(f"Di\t{a}\n" for a in addresses()),
    "pipe separated": "email|name\n" + "".join(f"{a}|Ed\n" for a in addresses()),
    "no header, address in the second column": "".join(f"Fay,{a},x\n" for a in addresses()),
    "a list with comments and blank lines": "# exported 2026-11-01\n\n"
    + "".join(f"{a}\n\n" for a in addresses())
    + "# end\n",
    "json lines with capitalised keys": "".join(
        json.dumps({"Email": a, "Name": "Gus"}) + "\n" for a in addresses()
    ),
}


@pytest.mark.usefixtures("server")
@pytest.mark.parametrize("content", EXPORTS.values(), ids=EXPORTS.keys())
def test_common_exports_import_every_address(tmp_path, content):
    path = tmp_path / "export.csv"
    path.write_text(content)
    assert imported(run(path)) == ROWS


@pytest.mark.usefixtures("server")
def test_european_excel_with_bom_crlf_and_semicolons(tmp_path):
    path = tmp_path / "excel.csv"
    body = "E-Mail;Name;Ort\r\n" + "".join(f"{a};Hal;Köln\r\n" for a in addresses())
    path.write_bytes("\ufeff".encode() + body.encode())
    assert imported(run(path)) == ROWS


@pytest.mark.usefixtures("server")
def test_a_column_can_be_named_by_number(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("a,b\n" + "".join(f"x,{a}\n" for a in addresses()))
    assert imported(run(path, "--column", "2")) == ROWS


@pytest.mark.usefixtures("server")
def test_a_free_text_reason_column_stops_once_with_advice_and_reason_overrides_it(tmp_path, server):  # noqa: F811
    path = tmp_path / "reasons.csv"
    path.write_text("email,reason\n" + "".join(f"{a},unsubscribed\n" for a in addresses()))
    refused = CliRunner().invoke(cli, ["dnc", "import", str(path)])
    assert refused.exit_code == 2
    assert "--reason" in refused.stderr
    assert refused.stderr.count("unsubscribed") == 1  # told once, not once a row
    assert server.dnc_emails() == set()
    assert imported(run(path, "--reason", "manual")) == ROWS


@pytest.mark.usefixtures("server")
def test_binary_input_is_one_short_line(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 40)
    result = CliRunner().invoke(cli, ["dnc", "import", str(path)])
    assert result.exit_code == 2
    assert "binary" in result.stderr
    assert len(result.stderr) < 300


@pytest.mark.usefixtures("server")
def test_an_empty_file_warns(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    result = CliRunner().invoke(cli, ["dnc", "import", str(path)])
    assert result.exit_code == 0
    assert "no entries" in result.stderr


@pytest.mark.usefixtures("server")
def test_the_rejects_file_holds_the_original_row_its_line_and_the_reason(tmp_path):
    import csv  # noqa: PLC0415

    path = tmp_path / "people.jsonl"
    lines = [
        json.dumps({"email": "ok@example.com", "name": "A"}),
        '{"email": "broken',
        json.dumps({"email": "nope"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(cli, ["dnc", "import", str(path), "--rejects", str(rejects)])
    assert result.exit_code == 1
    rows = list(csv.DictReader(rejects.read_text().splitlines()))
    assert [(r["line"], r["row"]) for r in rows] == [("2", lines[1]), ("3", lines[2])]
    assert rows[0]["value"] == '{"email": "broken'  # the text as read, not the exception
    assert "not valid JSON" in rows[0]["reason"]


def test_a_checkpoint_from_another_input_exits_2_before_anything_is_sent(tmp_path, server):  # noqa: F811
    first, second, checkpoint = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "job.ckpt"
    first.write_text("".join(f"a{i}@example.com\n" for i in range(50)))
    second.write_text("".join(f"b{i}@example.com\n" for i in range(50)))
    assert (
        CliRunner().invoke(cli, ["dnc", "import", str(first), "--checkpoint", str(checkpoint)]).exit_code == 0
    )
    requests = server.stats.requests
    result = CliRunner().invoke(cli, ["dnc", "import", str(second), "--checkpoint", str(checkpoint)])
    assert result.exit_code == 2
    assert "checkpoint" in result.stderr.lower()
    assert server.stats.requests == requests


def test_export_follows_the_target_extension(tmp_path, server):  # noqa: F811
    import gzip  # noqa: PLC0415

    server.add_dnc(["a@example.com", "b@example.com", "spam.com"])
    for name, check in (
        ("all.txt", lambda text: text.split() == ["a@example.com", "b@example.com", "spam.com"]),
        ("all.txt.gz", None),
        ("all.jsonl", lambda text: json.loads(text.splitlines()[0])["email"] == "a@example.com"),
        ("all.csv", lambda text: text.splitlines()[0].startswith("email,")),
    ):
        target = tmp_path / name
        result = CliRunner().invoke(cli, ["dnc", "export", str(target)])
        assert result.exit_code == 0, result.stderr
        text = gzip.decompress(target.read_bytes()).decode() if name.endswith(".gz") else target.read_text()
        assert check is None or check(text), (name, text)
        if name.endswith(".gz"):
            assert text.split() == ["a@example.com", "b@example.com", "spam.com"]


def test_concurrency_is_auto_or_a_number_on_every_command_that_sends_many(tmp_path, server):  # noqa: F811
    server.add_dnc([f"u{n}@example.com" for n in range(2_500)])
    target = tmp_path / "all.jsonl"
    for value in ("auto", "3"):
        result = CliRunner().invoke(cli, ["dnc", "export", str(target), "--concurrency", value])
        assert result.exit_code == 0, result.stderr
        lines = target.read_text().splitlines()
        assert len({json.loads(line)["id"] for line in lines}) == len(lines) == 2_500
        assert "2,500 entries (25 pages)" in result.stderr
    source = tmp_path / "in.txt"
    source.write_text("a@example.com\n")
    for value in ("0", "many", "-1"):
        refused = CliRunner().invoke(cli, ["dnc", "import", str(source), "--concurrency", value])
        assert refused.exit_code == 2
        assert "auto" in refused.stderr
    assert CliRunner().invoke(cli, ["dnc", "import", str(source), "--concurrency", "auto"]).exit_code == 0
