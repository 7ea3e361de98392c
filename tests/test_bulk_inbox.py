import pytest

from sendkit_async import NotFoundError, ValidationError

MISSING = "664a1b2c3d4e5f6a7b8c9d0e"


async def test_mark_read_with_many_ids_is_chunked_and_summed(fake_sendkit, sendkit_client):
    ids = [fake_sendkit.add_conversation(f"lead{i}@example.com") for i in range(2_500)]
    result = await sendkit_client.inbox.mark_read(ids)
    assert result.modified == 2_500
    assert fake_sendkit.stats.by_route["POST /v1/inbox/mark-read"] == 3


async def test_add_leads_to_dnc_chunks_by_the_configured_size(fake_sendkit, sendkit_client):
    ids = [fake_sendkit.add_conversation(f"lead{i}@example.com") for i in range(250)]
    fake_sendkit.add_dnc(["lead0@example.com"])
    result = await sendkit_client.inbox.add_leads_to_dnc(ids, max_ids_per_request=100, concurrency=2)
    assert (result.added, result.skipped, result.total) == (249, 1, 250)
    assert fake_sendkit.stats.by_route["POST /v1/inbox/dnc"] == 3
    assert fake_sendkit.stats.max_in_flight <= 2


async def test_chunks_respect_a_server_cap(sendkit_client, fake_sendkit):
    fake_sendkit.max_selection_ids = 1_000
    ids = [fake_sendkit.add_conversation(f"lead{i}@example.com") for i in range(1_001)]
    assert (await sendkit_client.inbox.mark_read(ids)).modified == 1_001


async def test_a_bad_id_anywhere_raises_before_any_chunk_is_sent(fake_sendkit, sendkit_client):
    ids = [MISSING] * 1_500 + ["bad"]
    with pytest.raises(ValidationError, match="24-hex"):
        await sendkit_client.inbox.mark_read(ids)
    assert fake_sendkit.stats.requests == 0


async def test_update_many_reports_each_id(fake_sendkit, sendkit_client):
    ids = [fake_sendkit.add_conversation(f"lead{i}@example.com") for i in range(5)]
    outcomes = await sendkit_client.inbox.update_many(
        [*ids[:2], MISSING, *ids[2:]], ai_tag="hot", concurrency=2
    )
    assert [o.id for o in outcomes] == [*ids[:2], MISSING, *ids[2:]]
    assert [o.ok for o in outcomes] == [True, True, False, True, True, True]
    assert isinstance(outcomes[2].error, NotFoundError)
    assert all(fake_sendkit.conversation(i).ai_tag == "hot" for i in ids)
    assert fake_sendkit.stats.max_in_flight <= 2


async def test_update_many_stops_sending_after_a_fatal_error(fake_sendkit, sendkit_client):
    ids = [fake_sendkit.add_conversation(f"lead{i}@example.com") for i in range(6)]
    fake_sendkit.workspace_keys.clear()
    outcomes = await sendkit_client.inbox.update_many(ids, mark_read=True, concurrency=1)
    assert all(o.error is not None and o.error.status == 401 for o in outcomes)
    assert fake_sendkit.stats.requests == 1


async def test_filters_with_many_explicit_ids_are_refused_not_dropped(fake_sendkit, sendkit_client):
    ids = [MISSING] * 1_500
    with pytest.raises(ValidationError, match="only with select_all"):
        await sendkit_client.inbox.mark_read(ids, filters={"campaignId": "c1"})
    with pytest.raises(ValidationError, match="only with select_all"):
        await sendkit_client.inbox.add_leads_to_dnc(ids, exclude_ids=[MISSING])
    assert fake_sendkit.stats.requests == 0
