import sendkit_async
import sendkit_async.testing


def test_all_is_sorted_and_importable():
    for module in (sendkit_async, sendkit_async.testing):
        names = module.__all__
        assert names == sorted(names, key=lambda n: (not n.isupper(), n))
        for name in names:
            assert hasattr(module, name), name


def test_version_comes_from_metadata():
    assert sendkit_async.__version__ == "0.1.0"
