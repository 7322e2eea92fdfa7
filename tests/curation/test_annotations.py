import pytest

from curation.models import Annotation, Tag
from tests.factories import make_batch


@pytest.fixture
def results(owner):
    return list(make_batch(owner).requests.order_by("line"))


def save(client, result, **data):
    return client.post(
        f"/api/results/{result.pk}/annotation", data, content_type="application/json"
    )


def test_metadata_is_saved_with_the_editor_and_time(carol_client, carol, results):
    response = save(
        carol_client,
        results[0],
        quality=85,
        category="excellent",
        tags=["senior", " Strong-Communication ", "senior"],
        notes="Clear reasoning.",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["edited_by"] == "carol"
    assert sorted(body["tags"]) == ["Strong-Communication", "senior"]
    annotation = Annotation.objects.get()
    assert (annotation.quality, annotation.category, annotation.notes) == (
        85,
        "excellent",
        "Clear reasoning.",
    )
    assert annotation.edited_by == carol
    html = carol_client.get(f"/results/{results[0].pk}/").content.decode()
    assert "Last edited by carol" in html and "Clear reasoning." in html


def test_tags_are_reused_across_results_case_insensitively(carol_client, results):
    save(carol_client, results[0], tags=["Senior"])
    save(carol_client, results[1], tags=["senior", "rust"])
    assert set(Tag.objects.values_list("name", flat=True)) == {"rust", "Senior"}
    suggestions = carol_client.get("/api/tags?q=se").json()["tags"]
    assert suggestions == ["Senior"]


def test_clearing_quality_and_tags(carol_client, results):
    save(carol_client, results[0], quality=40, tags=["a"])
    save(carol_client, results[0], quality=None, tags=[])
    annotation = Annotation.objects.get()
    assert annotation.quality is None and not annotation.tags.exists()


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"quality": 101}, "quality"),
        ({"quality": -1}, "quality"),
        ({"quality": "high"}, "quality"),
        ({"category": "Superb"}, "category"),
        ({"tags": "senior"}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"notes": "n" * 10_001}, "notes"),
        ({"notes": 5}, "notes"),
    ],
)
def test_invalid_metadata_is_refused_with_a_clear_message(carol_client, results, data, param):
    save(carol_client, results[0], quality=70)
    response = save(carol_client, results[0], **data)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"].startswith(param) and error["message"]
    assert Annotation.objects.get().quality == 70  # nothing stored changed
