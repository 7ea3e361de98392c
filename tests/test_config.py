import pytest

from sendkit_async import APITimeoutError, ConfigurationError, SendKit, Timeout, TransportTimeoutError
from sendkit_async.testing import MockTransport

from .conftest import KEY, PLATFORM_KEY


def test_missing_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="SENDKIT_API_KEY"):
        SendKit()


def test_key_and_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SENDKIT_API_KEY", PLATFORM_KEY)
    monkeypatch.setenv("SENDKIT_WORKSPACE_ID", "ws_1")
    monkeypatch.setenv("SENDKIT_BASE_URL", "https://eu.api.sendkit.ai")
    config = SendKit().session.config
    assert config.api_key == PLATFORM_KEY
    assert config.workspace_id == "ws_1"
    assert str(config.base_url) == "https://eu.api.sendkit.ai"


def test_platform_key_needs_a_workspace():
    with pytest.raises(ConfigurationError, match="platform key"):
        SendKit(api_key=PLATFORM_KEY)


def test_workspace_key_refuses_a_workspace():
    with pytest.raises(ConfigurationError, match="workspace key"):
        SendKit(api_key=KEY, workspace_id="ws_1")


def test_a_key_that_is_not_a_sendkit_key_is_refused():
    with pytest.raises(ConfigurationError, match="does not look like"):
        SendKit(api_key="hunter2")


@pytest.mark.parametrize("url", ["http://api.sendkit.ai", "http://10.0.0.5:8080"])
def test_plain_http_to_a_remote_host_is_refused(url):
    with pytest.raises(ConfigurationError, match="in clear"):
        SendKit(api_key=KEY, base_url=url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"])
def test_plain_http_to_loopback_is_allowed(url):
    assert SendKit(api_key=KEY, base_url=url).session.config.base_url.scheme == "http"


def test_plain_http_can_be_allowed_explicitly():
    client = SendKit(api_key=KEY, base_url="http://proxy.internal", allow_insecure_http=True)
    assert client.session.config.base_url.host == "proxy.internal"


@pytest.mark.parametrize("url", ["ftp://api.sendkit.ai", "not a url"])
def test_a_malformed_base_url_is_refused(url):
    with pytest.raises(ConfigurationError, match="http"):
        SendKit(api_key=KEY, base_url=url)


def test_a_number_timeout_is_the_total():
    assert SendKit(api_key=KEY, timeout=5).session.config.timeout == Timeout(total=5.0)


@pytest.mark.parametrize("make", [lambda: SendKit(api_key=KEY), lambda: SendKit(api_key=KEY).session])
def test_reprs_hide_the_key(make):
    obj = make()
    assert KEY not in repr(obj)
    assert KEY not in repr(obj.session.config if hasattr(obj, "session") else obj.config)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5", True, [5]])
def test_an_impossible_timeout_is_refused_at_construction(timeout):
    with pytest.raises(ConfigurationError, match="timeout"):
        SendKit(api_key=KEY, timeout=timeout)


@pytest.mark.parametrize("field", ["total", "connect"])
@pytest.mark.parametrize("value", [0, -0.5, float("nan"), float("inf")])
def test_timeout_fields_must_be_positive_and_finite(field, value):
    with pytest.raises(ConfigurationError):
        Timeout(**{field: value})


@pytest.mark.parametrize(
    "setting",
    [{"max_retries": "2"}, {"max_retries": -1}, {"max_retries": 1.5}, {"max_retry_wait": float("nan")}],
)
def test_retry_settings_must_be_numbers_in_range(setting):
    with pytest.raises(ConfigurationError):
        SendKit(api_key=KEY, **setting)


async def test_a_silent_server_holds_a_call_no_longer_than_the_documented_worst_case(clock):
    async def silent(request):
        await clock.sleep(request.timeout.total)  # every attempt runs into its timeout
        raise TransportTimeoutError("no answer in time")

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(silent)) as client:
        started = clock.monotonic()
        with pytest.raises(APITimeoutError):
            await client.dnc.get_page()
        assert clock.monotonic() - started <= 3 * 60 + 1.5
