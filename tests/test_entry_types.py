"""The caller says what the entries are: addresses, domains, or inferred (``type=``)."""

from __future__ import annotations

import pytest

from sendkit_async import DncEntry, EntryType, ImportOptions, ValidationError
from sendkit_async.bulk import ImportAbortedError
from sendkit_async.testing import FakeSendKit


async def stored_types(client) -> dict[str, str]:
    return {record.email: record.entry_type async for record in client.dnc.list()}


async def test_type_email_rejects_what_looks_like_a_domain_and_imports_nothing_as_one():
    entries = ["Ann@Example.com", "gmail.com", "john.doe.example.com", {"email": "bo@example.com"}]
    async with FakeSendKit() as fake, fake.client() as client:
        report = await client.dnc.import_bulk(entries, type="email")
        stored = await stored_types(client)
    assert stored == {"ann@example.com": "email", "bo@example.com": "email"}
    assert report.imported == 2
    assert report.domains == 0
    assert [(r.position, r.value) for r in report.rejected] == [(1, "gmail.com"), (2, "john.doe.example.com")]
    assert all("looks like a domain" in r.reason and "type domain" in r.reason for r in report.rejected)
    assert report.balanced


async def test_type_auto_keeps_the_rule_and_the_report_counts_domains_apart():
    async with FakeSendKit() as fake, fake.client() as client:
        report = await client.dnc.import_bulk(["a@example.com", "spamtrap.com", "b@example.com", "x.org"])
        stored = await stored_types(client)
    assert stored == {
        "a@example.com": "email",
        "spamtrap.com": "domain",
        "b@example.com": "email",
        "x.org": "domain",
    }
    assert (report.imported, report.domains) == (4, 2)


async def test_type_domain_makes_every_plain_value_a_domain_and_refuses_addresses():
    async with FakeSendKit() as fake, fake.client() as client:
        report = await client.dnc.import_bulk(["Spamtrap.com", "a@example.com", "b.org"], type="domain")
        stored = await stored_types(client)
    assert stored == {"spamtrap.com": "domain", "b.org": "domain"}
    assert report.domains == 2
    assert [r.position for r in report.rejected] == [1]


async def test_an_item_stating_its_own_type_keeps_it_and_a_domain_key_means_a_domain():
    entries = [{"email": "spamtrap.com", "type": "domain"}, {"domain": "Other.org"}, "a@example.com"]
    async with FakeSendKit() as fake, fake.client() as client:
        report = await client.dnc.import_bulk(entries, type="email")
        stored = await stored_types(client)
    assert stored == {"spamtrap.com": "domain", "other.org": "domain", "a@example.com": "email"}
    assert (report.imported, report.domains, report.rejected) == (3, 2, ())


async def test_the_dry_run_counts_domains_and_reads_the_same_type():
    async with FakeSendKit() as fake, fake.client() as client:
        auto = await client.dnc.validate_bulk(["a@example.com", "gmail.com"])
        email = await client.dnc.validate_bulk(["a@example.com", "gmail.com"], type="email")
    assert (auto.valid, auto.domains, len(auto.rejected)) == (2, 1, 0)
    assert (email.valid, email.domains, len(email.rejected)) == (1, 0, 1)


async def test_domains_are_counted_for_resumed_batches_too(tmp_path):
    entries = [f"u{i}@example.com" for i in range(30)] + [f"d{i}.example.org" for i in range(10)]
    checkpoint = tmp_path / "job.ckpt"
    async with FakeSendKit() as fake, fake.client() as client:
        first = await client.dnc.import_bulk(entries, batch_size=10, checkpoint=checkpoint)
        again = await client.dnc.import_bulk(entries, batch_size=10, checkpoint=checkpoint)
    assert first.domains == again.domains == 10
    assert again.resumed_batches == 4


@pytest.mark.parametrize("value", ["auto", "email", "domain", EntryType.EMAIL, " Email "])
def test_the_setting_takes_the_three_words_and_the_enum(value):
    assert ImportOptions(type=value).type in {"auto", "email", "domain"}


@pytest.mark.parametrize("value", ["emails", "", 3, None])
def test_any_other_setting_is_a_validation_error(value):
    with pytest.raises(ValidationError, match="type must be 'auto', 'email' or 'domain'"):
        ImportOptions(type=value)


def test_an_entry_typed_email_without_an_at_sign_says_it_looks_like_a_domain():
    with pytest.raises(ValidationError, match="looks like a domain"):
        DncEntry("gmail.com", type="email")
    assert DncEntry("gmail.com").type is EntryType.DOMAIN


async def test_a_checkpoint_holds_the_type_so_a_resume_with_another_type_is_refused(tmp_path):
    checkpoint = tmp_path / "job.ckpt"
    async with FakeSendKit() as fake, fake.client() as client:
        await client.dnc.import_bulk(["a@example.com"], checkpoint=checkpoint, type="email")
        with pytest.raises(ImportAbortedError, match="type"):
            await client.dnc.import_bulk(["a@example.com"], checkpoint=checkpoint, type="domain")
