"""Whatever a stored body or response holds, every page, admin page and export renders it.

The corpus is tests/factories.py's ODD_BODIES: non-string parts, tool messages,
huge and deeply nested contents, odd types, missing roles and responses that
are not completions. Two batches hold all of it under the same custom_ids.
"""

import io
import json
import logging
import zipfile

import pytest

from batches.models import Request, message_text
from curation import services
from curation.models import Star
from exports import services as exports
from exports.models import Export
from tests.factories import HUGE_TEXT, ODD_BODIES, make_odd_batch

CUSTOM_IDS = [custom_id for custom_id, *_ in ODD_BODIES]


@pytest.fixture
def odd(owner):
    return make_odd_batch(owner, model="tiny-chat"), make_odd_batch(owner, model="other-model")


@pytest.fixture
def no_errors_logged(caplog):
    caplog.set_level(logging.WARNING)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def get(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_every_viewer_page_renders_every_stored_body(odd, carol_client, no_errors_logged):
    first, second = odd
    pages = {
        "dashboard": "/",
        "results": "/results/",
        "batch": f"/results/?batch={first.public_id}",
        "failed": "/results/?status=failed",
        "search": "/results/?q=Paris",
        "search-beside-bare-strings": "/results/?q=real+one",
    }
    html = {name: get(carol_client, url) for name, url in pages.items()}
    for custom_id in CUSTOM_IDS:
        assert custom_id in html["batch"]
    assert "text-part-int" in html["failed"] and "error-string" in html["failed"]
    assert "tool-messages" in html["search"]
    assert "non-object-messages" in html["search-beside-bare-strings"]

    for result in Request.objects.filter(batch=first):
        get(carol_client, f"/results/{result.pk}/")
    query = f"batch={first.public_id}&batch={second.public_id}"
    for custom_id in CUSTOM_IDS:
        page = get(carol_client, f"/compare/?{query}&custom_id={custom_id}")
        assert page.count('class="candidate') == 2, custom_id


def review(client, batch, custom_id: str) -> str:
    return get(client, f"/results/{batch.requests.get(custom_id=custom_id).pk}/")


def test_text_parts_and_tool_calls_render_as_text_never_as_a_python_repr(odd, carol_client):
    first, second = odd
    html = review(carol_client, first, "text-parts")
    assert "<pre>Hello\nworld</pre>" in html
    assert "part one\npart two" in html
    assert "{&#x27;type&#x27;" not in html and "[{" not in html
    compare = get(
        carol_client,
        f"/compare/?batch={first.public_id}&batch={second.public_id}&custom_id=text-parts",
    )
    assert "<pre>Hello\nworld</pre>" in compare and "{&#x27;type&#x27;" not in compare

    html = review(carol_client, first, "tool-messages")
    assert '→ get_weather({"city": "Paris"})' in html.replace("&quot;", '"')
    assert "<h3>tool</h3><pre>18 C</pre>" in html
    html = review(carol_client, first, "image-part")
    assert "Describe\n[image_url]" in html
    html = review(carol_client, first, "missing-role")
    assert "<h3>(no role)</h3><pre>Who am I?</pre>" in html
    html = review(carol_client, first, "shadowing-keys")
    assert "items: 5" in html and "keys: null" in html
    html = review(carol_client, first, "markup")
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_a_table_shows_a_bounded_excerpt_of_a_huge_content(odd, carol_client):
    first, _ = odd
    listing = get(carol_client, f"/results/?batch={first.public_id}")
    assert len(listing) < 200_000  # two huge cells would be 2.4 MB
    assert HUGE_TEXT[:100] in listing
    assert HUGE_TEXT in review(carol_client, first, "huge")  # the review page shows it all


def test_message_text_never_raises_and_never_shows_a_repr():
    assert message_text([{"type": "text", "text": 5}]) == "5"
    assert message_text([{"type": "text", "text": "a"}, "b", 3, None]) == "a\nb\n3\nnull"
    assert message_text({"a": [1, None]}) == '{"a": [1, null]}'
    assert message_text([1, 2, 3]) == "[1, 2, 3]"  # token ids
    assert message_text(None) == "" and message_text(True) == "true"
    for _, body, response, _ in ODD_BODIES:
        result = Request(body=body, response=response)
        for text in (result.prompt_text, result.response_text, result.prompt_excerpt):
            assert isinstance(text, str)
        assert all(isinstance(t["content"], str) for t in result.transcript)


def test_the_admin_renders_every_stored_body(odd, admin_client, no_errors_logged):
    first, _ = odd
    changelist = get(admin_client, "/admin/batches/request/?all=")
    assert "text-part-int" in changelist
    get(admin_client, f"/admin/batches/request/?batch__id__exact={first.pk}")
    for result in Request.objects.filter(batch=first):
        get(admin_client, f"/admin/batches/request/{result.pk}/change/")


@pytest.fixture
def curated_odd(odd, carol):
    """Every odd result starred, and a winner picked for every input."""
    Star.objects.bulk_create(Star(request=r, user=carol) for r in Request.objects.all())
    for custom_id in CUSTOM_IDS:
        a, b = Request.objects.filter(custom_id=custom_id).order_by("batch_id")
        services.winner_pick(winner_id=a.pk, candidate_ids=[a.pk, b.pk], user=carol)
    return odd


EXPORTS = [
    {"format": "icl", "limit": "100"},
    {"format": "finetuning"},
    {"format": "finetuning", "split": "0.5"},
    {"format": "preference"},
    {"format": "csv", "starred": "any"},
    {"format": "batch_input", "target_model": "tiny-chat"},
]


@pytest.mark.parametrize("params", EXPORTS, ids=lambda p: "-".join(p.values()))
def test_every_export_format_skips_odd_rows_with_a_reason(
    curated_odd, carol_client, params, no_errors_logged
):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    count = carol_client.get(f"/api/exports/count?{query}")
    assert count.status_code == 200
    response = carol_client.post("/api/export-gold-star", params, content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    response = carol_client.get(response.json()["download_url"])
    assert response.status_code == 200, response.content[:300]
    content = b"".join(response.streaming_content)
    record = Export.objects.get()
    assert record.rows + record.skipped >= min(count.json()["rows"], 1)
    manifest = json.loads(
        (exports.exports_root() / record.directory / exports.MANIFEST).read_text()
    )
    assert manifest["skipped"]["rows"] == record.skipped
    assert sum(manifest["skipped"]["reasons"].values()) == record.skipped
    if params["format"] == "csv":
        assert record.skipped == 0  # the CSV shows every row, as text
        assert content.decode().count("\n") > len(CUSTOM_IDS)
        return
    assert record.skipped > 0 and record.rows > 0
    files = (
        [zipfile.ZipFile(io.BytesIO(content)).read(n) for n in ("train.jsonl", "validation.jsonl")]
        if "split" in params
        else [content]
    )
    for file in files:
        for line in file.decode().splitlines():
            record_line = json.loads(line)
            for message in record_line.get("messages", []):
                assert isinstance(message["content"], str)  # text, as the tools expect


def test_the_admin_exports_selected_odd_rows_as_csv(odd, admin_client, no_errors_logged):
    ids = [str(pk) for pk in Request.objects.values_list("pk", flat=True)]
    response = admin_client.post(
        "/admin/batches/request/export/",
        {
            "format": "0",
            "export_items": ids,
            "resource": "0",
            **{f"resultresource_{n}": "on" for n in ["custom_id", "prompt", "response"]},
        },
    )
    assert response.status_code == 200, response.content[:500]
    assert Export.objects.get().rows == len(ids)
