"""The fake server judges requests by its own rules (``testing/_judge.py``), never the client's.

Hand-picked cases from the address grammar are the ground truth for both; a
hypothesis run then holds the two independent implementations to the same
verdicts, so a slip in either shows up as a disagreement.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendkit_async._errors import ValidationError
from sendkit_async._validate import all_normal_emails, is_object_id, normalize_domain, normalize_email
from sendkit_async.models import DncReason
from sendkit_async.testing import _judge

TESTING = Path(__file__).parent.parent / "sendkit_async" / "testing"

VALID = {
    "a@b.co": "a@b.co",
    " First.Last@Sub.Example.COM ": "first.last@sub.example.com",
    "x+tag@example.org": "x+tag@example.org",
    "o'brien@example.ie": "o'brien@example.ie",
    "user@xn--bcher-kva.example": "user@xn--bcher-kva.example",
    "user@bücher.example": "user@xn--bcher-kva.example",
    "a@example.com.": "a@example.com",
    "#!$%&'*+-/=?^_`{}|~@example.com": "#!$%&'*+-/=?^_`{}|~@example.com",
    "1@1.io": "1@1.io",
}
INVALID = [
    "",
    "plainaddress",
    "@example.com",
    "a@",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a@-example.com",
    "a@example-.com",
    "a@example",
    "a@example.c",
    "a@example.123",
    "a b@example.com",
    "a@exa mple.com",
    "0@ 0.XX",  # a space after the @ (found by the hypothesis test below: the client once stripped it)
    "a@@example.com",
    "a@example..com",
    "x" * 65 + "@example.com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 60] * 5) + ".com",
    "ü@example.com",
    'a"b@example.com',
    "a@example.com\nb@example.com",
]


def _client(text: str) -> str | None:
    try:
        return normalize_email(text)
    except ValidationError:
        return None


def _client_domain(text: str) -> str | None:
    try:
        return normalize_domain(text)
    except ValidationError:
        return None


def test_nothing_under_testing_imports_the_clients_validation_or_models():
    for module in TESTING.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in {"sendkit_async._validate", "sendkit_async.models"}, module.name
                assert not (node.level and node.module in {"_validate", "models"}), module.name


@pytest.mark.parametrize(("text", "normal"), VALID.items())
def test_both_accept_a_valid_address_and_agree_on_its_normal_form(text, normal):
    assert _judge.address(text) == normal
    assert _client(text) == normal


@pytest.mark.parametrize("text", INVALID)
def test_both_refuse_an_invalid_address(text):
    assert _judge.address(text) is None
    assert _client(text) is None


@pytest.mark.parametrize("text", ["example.com", "Sub.Example.COM", "bücher.example", "a-b.co"])
def test_both_accept_a_domain(text):
    assert _judge.domain(text) == _client_domain(text) is not None


@pytest.mark.parametrize("text", ["", "example", "-a.com", "a..com", "a.1", "a b.com", "a@b.com"])
def test_both_refuse_a_bad_domain(text):
    assert _judge.domain(text) is None
    assert _client_domain(text) is None


def test_ids_and_reasons_agree_with_the_clients():
    for value in ["0" * 24, "a1B2" * 6, "0" * 23, "g" * 24, 123, None, "0" * 25]:
        assert _judge.is_id(value) == is_object_id(value)
    assert {reason.value for reason in DncReason} == _judge.REASONS


_ADDRESSY = st.text(alphabet=st.sampled_from("abcXYZ019.-_+@'ü \n"), min_size=0, max_size=30) | st.from_regex(
    r"[a-z0-9._+-]{1,20}@[a-z0-9.-]{1,20}\.[a-z]{1,4}", fullmatch=True
)


@settings(max_examples=600, deadline=None)
@given(_ADDRESSY)
def test_the_two_implementations_give_the_same_verdict(text):
    assert _judge.address(text) == _client(text)


@settings(max_examples=250, deadline=None)
@given(st.lists(_ADDRESSY, min_size=1, max_size=5))
def test_the_fast_batch_paths_never_accept_what_the_one_by_one_rules_refuse(texts):
    if _judge.all_plain_addresses(texts):
        assert all(_judge.address(text) == text for text in texts)
    if all_normal_emails(texts):
        assert all(_judge.address(text) == text for text in texts)
