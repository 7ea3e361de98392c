"""The API key never leaves the configured origin, and never comes back out of an error."""

import pytest
from aiohttp import web

from sendkit_async import AuthenticationError, RedirectError, SendKit
from sendkit_async.cli._output import describe_error

from .conftest import KEY


class Server:
    """A loopback aiohttp server with one catch-all handler, recording what reaches it."""

    def __init__(self, handler):
        self.handler = handler
        self.seen: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self):
        async def record(request):
            self.seen.append(dict(request.headers))
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def ok(_request):
    return web.json_response({"success": True, "data": [], "pagination": {}})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("call", ["get_page", "import_entries"])
async def test_a_redirect_to_another_origin_is_not_followed_and_carries_no_key(status, call):
    async with Server(ok) as elsewhere:

        async def answer(_request):
            return web.Response(status=status, headers={"Location": f"{elsewhere.url}/steal"})

        async with Server(answer) as api, SendKit(api_key=KEY, base_url=api.url) as client:
            send = client.dnc.get_page() if call == "get_page" else client.dnc.import_entries(["a@x.com"])
            with pytest.raises(RedirectError) as caught:
                await send
    assert elsewhere.seen == []
    assert caught.value.location == f"{elsewhere.url}/steal"
    assert "not followed" in str(caught.value)


async def test_a_key_echoed_in_any_field_of_an_error_is_redacted_everywhere():
    async def echo(request):
        key = request.headers["X-Api-Key"]
        body = {"error": f"bad key {key}", "message": f"key {key} is revoked", "code": key}
        return web.json_response(body, status=401, headers={"X-Request-Id": f"req-{key}"})

    async with Server(echo) as api, SendKit(api_key=KEY, base_url=api.url) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.dnc.get_page()
    error = caught.value
    fields = [str(error), repr(error), error.error, error.message, error.code, error.request_id, error.body]
    fields.append(describe_error(error))
    assert all(KEY not in str(text) for text in fields)
    assert error.request_id == "req-[redacted]"


@pytest.mark.parametrize(
    "code",
    [
        {"key": "<KEY>", "nested": ["x", "<KEY>"]},
        ["<KEY>", 1],
        {"<KEY>": True},
        42,
    ],
)
async def test_a_key_echoed_in_a_non_string_code_is_redacted_in_its_fields_and_its_pickle(code):
    import pickle  # noqa: PLC0415

    def echoed(value, key):
        if isinstance(value, str):
            return value.replace("<KEY>", key)
        if isinstance(value, dict):
            return {echoed(k, key): echoed(v, key) for k, v in value.items()}
        if isinstance(value, list):
            return [echoed(v, key) for v in value]
        return value

    async def echo(request):
        body = {"error": "Unauthorized", "message": "no", "code": echoed(code, request.headers["X-Api-Key"])}
        return web.json_response(body, status=401)

    async with Server(echo) as api, SendKit(api_key=KEY, base_url=api.url) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.dnc.get_page()
    error = caught.value
    assert KEY not in repr(vars(error))
    assert KEY.encode() not in pickle.dumps(error)
    assert KEY not in repr(pickle.loads(pickle.dumps(error)).code)  # noqa: S301 - our own object


async def test_a_key_echoed_in_a_header_of_a_success_is_redacted_in_response_info():
    async def echo(request):
        key = request.headers["X-Api-Key"]
        return web.json_response(
            {"success": True, "data": [], "pagination": {}},
            headers={"X-Echo": f"you sent {key}", f"X-{key}": "1", "X-Request-Id": f"r-{key}"},
        )

    async with Server(echo) as api, SendKit(api_key=KEY, base_url=api.url) as client:
        page = await client.dnc.get_page()
    headers = page.response.headers
    assert headers["X-Echo"] == "you sent [redacted]"
    assert KEY not in repr(dict(headers))
    assert page.request_id == "r-[redacted]"
