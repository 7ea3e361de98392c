import pytest

from sendkit_async import NotFoundError, ValidationError

SEED_ID = "664a1b2c3d4e5f6a7b8c9d0e"


async def test_seed_bodies_round_trip(fake_sendkit, sendkit_client):
    ids = [fake_sendkit.add_conversation(f"lead{i}@example.com") for i in range(4)]
    fake_sendkit.add_dnc(["lead3@example.com"])
    added = await sendkit_client.inbox.add_leads_to_dnc(ids)
    assert (added.added, added.skipped, added.total) == (3, 1, 4)
    marked = await sendkit_client.inbox.mark_read(ids[:3])
    assert marked.modified == 3
    assert (await sendkit_client.inbox.mark_read(ids[:3])).modified == 0


async def test_select_all_with_filters_and_exclusions(fake_sendkit, sendkit_client):
    a = fake_sendkit.add_conversation("a@example.com", campaign_id="c1")
    b = fake_sendkit.add_conversation("b@example.com", campaign_id="c1")
    fake_sendkit.add_conversation("c@example.com", campaign_id="c2")
    result = await sendkit_client.inbox.mark_read(
        select_all=True, filters={"campaignId": "c1"}, exclude_ids=[b]
    )
    assert result.modified == 1
    assert fake_sendkit.conversation(a).unread == 0
    assert fake_sendkit.conversation(b).unread == 1
    added = await sendkit_client.inbox.add_leads_to_dnc(select_all=True)
    assert added.total == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "select_all=True to select"),
        (([SEED_ID],), {"select_all": True}, "not both"),
        (([],), {}, "empty"),
        ((["abc"],), {}, "24-hex"),
        ((SEED_ID,), {}, "single string"),
        (([SEED_ID],), {"filters": {"campaignId": "x"}}, "only with select_all"),
        ((), {"select_all": True, "exclude_ids": ["nope"]}, "24-hex"),
    ],
)
@pytest.mark.parametrize("method", ["mark_read", "add_leads_to_dnc"])
async def test_bad_selections_raise_before_sending(
    fake_sendkit, sendkit_client, method, args, kwargs, message
):
    with pytest.raises(ValidationError, match=message):
        await getattr(sendkit_client.inbox, method)(*args, **kwargs)
    assert fake_sendkit.stats.requests == 0


async def test_update_sets_and_removes_the_ai_tag(fake_sendkit, sendkit_client):
    cid = fake_sendkit.add_conversation("a@example.com", ai_tag="old", tags=["t"])
    updated = await sendkit_client.inbox.update(cid, ai_tag="interested", tags=["vip"])
    assert (updated.id, updated.ai_tag, updated.tags) == (cid, "interested", ("vip",))
    kept = await sendkit_client.inbox.update(cid, mark_read=True)
    assert kept.ai_tag == "interested"
    assert fake_sendkit.conversation(cid).unread == 0
    removed = await sendkit_client.inbox.update(cid, ai_tag=None)
    assert removed.ai_tag is None
    assert removed.tags == ("vip",)


async def test_leaving_ai_tag_out_does_not_send_it(client, wire):
    from .conftest import API  # noqa: PLC0415

    wire.patch(f"{API}/v1/inbox/{SEED_ID}", payload={"success": True, "data": {"id": SEED_ID, "tags": []}})
    await client.inbox.update(SEED_ID, mark_read=True)
    [request] = wire.sent()
    assert request.body == b'{"markRead":true}'


async def test_unknown_conversation_is_not_found(sendkit_client):
    with pytest.raises(NotFoundError, match="not found"):
        await sendkit_client.inbox.update(SEED_ID, mark_read=True)


@pytest.mark.parametrize(
    ("cid", "kwargs", "message"),
    [
        ("example_string", {"mark_read": True}, "24-hex"),
        (SEED_ID, {}, "nothing to update"),
        (SEED_ID, {"ai_tag": ""}, "non-empty"),
        (SEED_ID, {"tags": "vip"}, "list"),
        (SEED_ID, {"mark_read": "yes"}, "True or False"),
    ],
)
async def test_bad_updates_raise_before_sending(fake_sendkit, sendkit_client, cid, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        await sendkit_client.inbox.update(cid, **kwargs)
    assert fake_sendkit.stats.requests == 0
