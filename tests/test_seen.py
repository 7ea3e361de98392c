"""The job's memory of addresses (``bulk/_seen.py``), held to a plain Python set, the obvious truth."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sendkit_async.bulk._seen as seen_module
from sendkit_async.bulk._seen import SeenAddresses

ADDRESSES = st.sampled_from([f"user{i}@example{i % 7}.com" for i in range(400)])


@pytest.fixture(params=[0, 2, 10], ids=["one bucket", "four buckets", "1,024 buckets"])
def first_bits(request, monkeypatch):
    """Small tables grow, and stash the pairs of full buckets, many times over a test."""
    monkeypatch.setattr(seen_module, "_FIRST_BITS", request.param)
    return request.param


@settings(max_examples=150, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(["many", "all_new", "one"]), st.lists(ADDRESSES, max_size=60)), max_size=25
    ),
    bits=st.sampled_from([0, 2, 10]),
)
def test_it_answers_as_a_set_would_through_every_growth(calls, bits):
    original = seen_module._FIRST_BITS
    seen_module._FIRST_BITS = bits
    try:
        seen, truth = SeenAddresses(), set()
        for kind, emails in calls:
            if kind == "many":
                expected = []
                for email in emails:
                    expected.append(email not in truth)
                    truth.add(email)
                assert seen.add_many(emails) == expected
            elif kind == "all_new":
                distinct = dict.fromkeys(emails)
                expected_ok = truth.isdisjoint(distinct)
                assert seen.add_if_all_new(distinct) == expected_ok
                if expected_ok:
                    truth.update(distinct)
            else:
                for email in emails:
                    assert seen.add(email) == (email not in truth)
                    truth.add(email)
            assert len(seen) == len(truth)
    finally:
        seen_module._FIRST_BITS = original


@pytest.mark.usefixtures("first_bits")
def test_a_hundred_thousand_addresses_are_all_remembered_and_all_repeats_caught():
    seen = SeenAddresses()
    emails = [f"person{i}@domain{i % 1000}.example" for i in range(100_000)]
    for start in range(0, len(emails), 4096):
        assert seen.add_if_all_new(dict.fromkeys(emails[start : start + 4096]))
    assert len(seen) == 100_000
    assert not any(seen.add_many(emails[::7]))
    assert seen.add_many(["fresh@example.com", "fresh@example.com"]) == [True, False]
    assert seen.nbytes() / len(seen) < 40


def test_forget_lets_go_of_everything():
    seen = SeenAddresses()
    seen.add_many(["a@example.com", "b@example.com"])
    seen.forget()
    assert len(seen) == 0
    assert seen.add("a@example.com")


def test_two_addresses_sharing_one_digest_but_not_both_are_told_apart(monkeypatch):
    """The second digest matching alone (odds 2**-64 a pair) is not a repeat; the first must match too."""
    real = seen_module._digests

    def colliding(emails):
        first, second = real(emails)
        second[:] = 12345  # every address's second digest the same
        return first, second

    monkeypatch.setattr(seen_module, "_digests", colliding)
    seen = SeenAddresses()
    assert seen.add_many(["a@example.com", "b@example.com", "c@example.com"]) == [True, True, True]
    assert seen.add_many(["b@example.com", "d@example.com"]) == [False, True]


def test_importing_the_package_leaves_numpy_to_the_jobs_that_dedupe():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = "import sys, sendkit_async; sys.exit('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
