"""CLI import jobs kept in Redis, with real processes: kill -9, resume elsewhere, one run at a time."""

import json
import socket
import subprocess
import time

import redis as sync_redis

from sendkit_async.cli._dnc import default_job_name

from .test_cli import ThreadedFake, _cli

COUNT = 12_000


def write_input(path):
    """COUNT distinct addresses with a repeat every 100 (repeats are duplicates, not problems)."""
    lines = []
    for i in range(COUNT):
        lines.append(f"user{i}@example.com\n")
        if i % 100 == 0:
            lines.append(f"USER{i}@example.com\n")
    path.write_text("".join(lines))
    return len(lines)


def run_cli(argv, env, **options):
    """Run the CLI to the end: its exit code and output, never raising on a non-zero code."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False, **options)


def landed(client, job):
    return client.hlen(f"sendkit:job:{{{job}}}:batches")


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_job_killed_mid_import_resumes_from_another_directory_and_adds_up(tmp_path, redis_server):
    data = tmp_path / "data"
    data.mkdir()
    source = data / "list.txt"
    lines = write_input(source)
    first_dir, second_dir = tmp_path / "host-a", tmp_path / "host-b" / "deeper"
    first_dir.mkdir()
    second_dir.mkdir(parents=True)
    job = default_job_name(str(source))
    store = sync_redis.Redis.from_url(redis_server.url)
    with ThreadedFake(latency=0.2) as fake:
        env = {"SENDKIT_API_KEY": fake.api_key, "SENDKIT_BASE_URL": fake.url}
        options = ["--batch-size", "1000", "--concurrency", "2", "--checkpoint", redis_server.url]
        argv, env = _cli("dnc", "import", "../data/list.txt", *options, "--lease-ttl", "1", "--json", env=env)
        with subprocess.Popen(
            argv, env=env, cwd=first_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as run:
            wait_until(lambda: landed(store, job) >= 3)
            run.kill()  # kill -9: no cleanup, the lease is left to expire
        records = landed(store, job)
        fake.edge.latency = 0

        argv, env = _cli(
            "dnc", "import", "../../data/list.txt", *options, "--lease-wait", "20", "--json", env=env
        )
        resumed = run_cli(argv, env, cwd=second_dir)
        assert resumed.returncode == 0, resumed.stderr
        received = fake.stats.entries_received
        stored = fake.dnc_emails()
    store.close()
    report = json.loads(resumed.stdout)
    assert stored == {f"user{i}@example.com" for i in range(COUNT)}
    assert report["read"] == lines
    assert report["resumed_batches"] >= records >= 3
    counted = report["rejected"] + report["duplicates"] + report["imported"] + report["skipped"]
    assert counted + report["failed"] == lines
    assert report["imported"] + report["skipped"] == COUNT
    # Nothing landed was sent twice beyond the two batches in flight at the kill.
    assert received <= COUNT + 2 * 1_000


def test_one_run_per_job_a_second_exits_2_naming_the_holder_and_a_third_takes_over(tmp_path, redis_server):
    source = tmp_path / "list.txt"
    write_input(source)
    store = sync_redis.Redis.from_url(redis_server.url)
    with ThreadedFake(latency=0.2) as fake:
        env = {"SENDKIT_API_KEY": fake.api_key, "SENDKIT_BASE_URL": fake.url}
        # One request at a time, 0.2 s each: the first run is still sending when the second starts.
        options = [
            "--batch-size",
            "500",
            "--concurrency",
            "1",
            "--checkpoint",
            redis_server.url,
            "--job",
            "nightly",
        ]
        argv, env = _cli("dnc", "import", str(source), *options, "--json", "--lease-ttl", "1.5", env=env)
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as first:
            wait_until(lambda: landed(store, "nightly") >= 1)
            second = run_cli(argv, env)
            first.kill()
            first.wait()
        left = store.pttl("sendkit:job:{nightly}:lease")  # nobody renews it now: it ends within its TTL
        fake.edge.latency = 0
        third = run_cli([*argv, "--lease-wait", "30"], env)
        stored = fake.dnc_emails()
    store.close()
    assert second.returncode == 2, second.stderr
    assert f"is running on {socket.gethostname()} (pid {first.pid}) since" in second.stderr
    assert "--lease-wait" in second.stderr
    assert json.loads(second.stdout)["read"] == 0  # it read and sent nothing
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["resumed_batches"] >= 1
    assert 0 < left <= 1_500
    assert stored == {f"user{i}@example.com" for i in range(COUNT)}


def test_job_options_that_cannot_work_are_usage_errors(tmp_path):
    source = tmp_path / "list.txt"
    source.write_text("a@example.com\n")
    for extra, message in (
        (["--job", "x"], "a checkpoint file is its own job"),
        (["--checkpoint", str(tmp_path / "c"), "--job", "x"], "a checkpoint file is its own job"),
    ):
        argv, env = _cli("dnc", "import", str(source), *extra, env={"SENDKIT_API_KEY": "sk_test_x"})
        result = run_cli(argv, env)
        assert result.returncode == 2
        assert message in result.stderr
    argv, env = _cli(
        "dnc", "import", "-", "--checkpoint", "redis://127.0.0.1:1/0", env={"SENDKIT_API_KEY": "sk_test_x"}
    )
    result = run_cli(argv, env, input="a@example.com\n")
    assert result.returncode == 2
    assert "--job is needed" in result.stderr


def test_the_default_job_name_is_the_same_from_any_directory(tmp_path, monkeypatch):
    source = tmp_path / "My List.csv"
    source.write_text("email\na@example.com\n")
    name = default_job_name(str(source))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert default_job_name("../My List.csv") == name
    assert name.startswith("My_List.csv-")
    assert " " not in name
    source.write_text("email\na@example.com\nb@example.com\n")
    assert default_job_name(str(source)) != name  # another size: another job
