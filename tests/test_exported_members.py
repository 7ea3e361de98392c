import __future__

import types

import sendkit_async
import sendkit_async.budget
import sendkit_async.bulk
import sendkit_async.testing
import sendkit_async.transport

PUBLIC = (
    sendkit_async,
    sendkit_async.budget,
    sendkit_async.bulk,
    sendkit_async.testing,
    sendkit_async.transport,
)

LAZY = {"RedisBudget", "RedisCheckpoints"}  # imported on first use: they need the redis extra


def public_members(module):
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, (types.ModuleType, __future__._Feature))
    }


def test_all_is_sorted_and_importable():
    for module in PUBLIC:
        names = module.__all__
        assert names == sorted(names, key=lambda n: (not n.isupper(), n))
        for name in names:
            assert hasattr(module, name), name


def test_every_public_member_is_exported_and_every_export_exists():
    for module in PUBLIC:
        exported = set(module.__all__) - {"__version__"}
        assert public_members(module) - LAZY == exported - LAZY, module.__name__


def test_the_front_door_holds_what_a_program_writes_daily():
    # The client, its options, models, errors and the report; the rest one level down.
    assert len(sendkit_async.__all__) <= 45
    for lower in (
        "Lane",
        "Observation",
        "Permit",
        "Shape",
        "Clock",
        "WireRequest",
        "WireResponse",
        "ImportSettings",
    ):
        assert lower not in sendkit_async.__all__


def test_version_comes_from_metadata():
    assert sendkit_async.__version__ == "0.1.0"


def test_errors_keep_their_defining_module_so_their_source_can_be_found():
    import inspect  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    error = sendkit_async.ValidationError("bad")
    assert type(error).__module__ == "sendkit_async._errors"  # where inspect and debuggers find it
    assert "class ValidationError" in inspect.getsource(type(error))
    assert type(pickle.loads(pickle.dumps(error))) is sendkit_async.ValidationError  # noqa: S301 - our own object
