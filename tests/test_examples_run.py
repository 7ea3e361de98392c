"""Every Python example of the README and the docs runs, as written, against the bundled fake server.

Each runs in a fresh interpreter, in an empty folder, with ``SENDKIT_API_KEY`` and
``SENDKIT_BASE_URL`` pointing at a fake server (and a real redis-server where an
example names Redis). Only placeholders are replaced: ``"sk_..."`` by the fake's
key, ``redis://redis:6379/0`` by the test's Redis, the sample conversation id by
one the fake holds. A fragment (top-level ``await``, a ``client`` it does not
make) runs inside a prelude that opens ``client``; an example that only defines
functions is called the way its page says (``EPILOGUES``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_cli import ThreadedFake

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SAMPLE_CONVERSATION = "664a1b2c3d4e5f6a7b8c9d0e"

# The pytest-plugin example is a project of its own: test_readme_examples.py runs it under pytest.
EXAMPLES = [
    (f"{page.relative_to(ROOT)}#{index}", code)
    for page in PAGES
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL))
    if "pytest_plugins" not in code
]

# Run for a fragment: ``client`` open on the environment's key, and the names the pages
# leave to the reader (an input of addresses).
PRELUDE = """
import ast, asyncio, os, sys
from sendkit_async import SendKit

def read_addresses():
    for i in range(2500):
        yield f"reader{i}@example.com"

addresses = [f"listed{i}@example.com" for i in range(300)]

async def __run(code):
    async with SendKit() as client:
        namespace = {"__name__": "__main__", "client": client, "addresses": addresses,
                     "read_addresses": read_addresses, "os": os}
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            await result
        epilogue = os.environ.get("EXAMPLE_EPILOGUE")
        if epilogue:
            then = compile(epilogue, "epilogue", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(then, namespace)
            if asyncio.iscoroutine(result):
                await result

source = open(sys.argv[1], encoding="utf-8").read()
asyncio.run(__run(compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)))
"""

# How the pages say to use an example that only defines things.
EPILOGUES = {
    "workers.md#0": "await main(os.environ['EXAMPLE_CONVERSATIONS'].split(','))",
    "big-imports.md#2": textwrap.dedent(
        """
        open("upload.txt", "w").write("".join(f"u{i}@example.com\\n" for i in range(1200)))
        ctx = {}
        await startup(ctx)
        try:
            result = await import_dnc(ctx, "42", "upload.txt")
        finally:
            await shutdown(ctx)
        assert result == {"imported": 1200, "skipped": 0, "failed": 0}, result
        """
    ),
}

EPILOGUES["web-app.md#1"] = textwrap.dedent(
    """
    # The app served as it would be: uvicorn on a free port, its lifespan run (one client for
    # the app's life), asked over HTTP. (Starlette's TestClient needs an extra HTTP client.)
    import asyncio
    import socket

    import aiohttp
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    served = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(served.serve(sockets=[listening]))
    while not served.started:
        await asyncio.sleep(0.01)
    url = "http://127.0.0.1:%d" % listening.getsockname()[1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/unsubscribe/Ann@Example.com") as answer:
                assert await answer.json() == {"ok": True}
            async with http.post(url + "/unsubscribe/gmail.com") as refused:
                assert refused.status == 422, await refused.text()
                assert "looks like a domain" in (await refused.json())["detail"]
    finally:
        served.should_exit = True
        await serving
        listening.close()
    """
)

# What an example needs that is not this package's (``nox -s docs`` installs it); arq is
# stood in for, as only its RedisSettings is named.
NEEDS = {"web-app.md#1": "fastapi"}  # uvicorn comes with it in the test extra
ARQ_STAND_IN = """
class RedisSettings:
    @classmethod
    def from_dsn(cls, dsn):
        return cls()
"""


@pytest.fixture(scope="module")
def fake():
    with ThreadedFake(seed=0) as server:
        # Many pages, so a loop that leaves a listing early (the README's break) leaves a concurrent walk.
        server.add_dnc(f"seeded{i}@example.com" for i in range(5_000))
        yield server


@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_the_example_runs_against_the_fake(name, code, fake, redis_server, tmp_path):
    short = name.rsplit("/", 1)[-1]
    needed = NEEDS.get(short)
    if needed is not None and importlib.util.find_spec(needed) is None:
        pytest.skip(f"needs {needed}, which is not installed here")
    conversation = fake.add_conversation("lead@example.com")
    text = (
        code.replace('"sk_..."', repr(fake.api_key))
        .replace("redis://redis:6379/0", redis_server.url)
        .replace(SAMPLE_CONVERSATION, conversation)
    )
    (tmp_path / "dnc.txt").write_text("".join(f"file{i}@example.com\n" for i in range(1500)))
    if "from arq" in text and importlib.util.find_spec("arq") is None:
        (tmp_path / "arq").mkdir()
        (tmp_path / "arq" / "__init__.py").write_text("")
        (tmp_path / "arq" / "connections.py").write_text(ARQ_STAND_IN)
    (tmp_path / "example.py").write_text(text)
    if "asyncio.run(" in text or "run_in_virtual_time(" in text:  # a whole script
        command = [sys.executable, "example.py"]
    else:
        (tmp_path / "prelude.py").write_text(PRELUDE)
        command = [sys.executable, "prelude.py", "example.py"]
    env = {
        **os.environ,
        "SENDKIT_API_KEY": fake.api_key,
        "SENDKIT_BASE_URL": fake.url,
        "EXAMPLE_EPILOGUE": EPILOGUES.get(short, ""),
        "EXAMPLE_CONVERSATIONS": ",".join([conversation, fake.add_conversation("other@example.com")]),
        "PYTHONPATH": str(tmp_path),
    }
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
