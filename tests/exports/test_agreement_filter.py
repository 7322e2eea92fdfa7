"""Exports that require agreement: "two reviewers both scored >= 80", "both chose good"."""

import csv
import io
import json

import pytest

from curation import adjudication, judgments
from curation.models import Judgment
from exports import services
from exports.models import Export
from tests.factories import make_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def erin(django_user_model):
    return django_user_model.objects.create_user("erin", is_staff=True)


@pytest.fixture
def judged(owner, carol, dave, erin):
    """Six results and what each reviewer said about them (quality, category)."""
    results = {r.custom_id: r for r in make_batch(owner, count=6, prefix="j").requests.all()}
    said = {
        "j-0": {carol: (90, "good"), dave: (85, "good")},  # both >= 80, both good
        "j-1": {carol: (95, "good"), dave: (70, "good")},  # one below 80
        "j-2": {carol: (92, "excellent")},  # only one reviewer
        "j-3": {carol: (80, "good"), dave: (81, "excellent"), erin: (99, "good")},
        "j-4": {carol: (None, "good"), dave: (88, "good"), erin: (None, "")},
        "j-5": {carol: (60, "needs_improvement"), dave: (65, "needs_improvement")},
    }
    for custom_id, by in said.items():
        for reviewer, (quality, category) in by.items():
            judgments.judgment_update(
                request=results[custom_id],
                reviewer=reviewer,
                changes={"quality": quality, "category": category},
            )
    return results


def exported(params: dict, user) -> list[str]:
    """The custom_ids in a real CSV export made with `params`."""
    export = services.export_create(
        params={"format": "csv", "starred": "any", **params}, user=user, origin="viewer"
    )
    path = services.export_path(export, "results.csv")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return sorted(row["custom_id"] for row in rows)


def test_two_reviewers_who_both_scored_at_least_n(judged, carol):
    assert exported({"agreed_quality_min": "80"}, carol) == ["j-0", "j-3"]
    export = Export.objects.latest("pk")
    assert export.params["agreed_quality_min"] == "80"
    manifest = json.loads(services.export_path(export, "metadata.json").read_text())
    assert manifest["params"]["agreed_quality_min"] == "80"
    # Three reviewers: only j-3 has three scores, all >= 80.
    assert exported({"agreed_quality_min": "80", "agreed_reviewers": "3"}, carol) == ["j-3"]
    assert exported({"agreed_quality_min": "60"}, carol) == ["j-0", "j-1", "j-3", "j-5"]


def test_reviewers_who_chose_the_same_category_and_nobody_another(judged, carol):
    assert exported({"agreed_category": "good"}, carol) == ["j-0", "j-1", "j-4"]
    assert exported({"agreed_category": "good", "agreed_quality_min": "80"}, carol) == ["j-0"]
    assert exported({"agreed_category": "needs_improvement"}, carol) == ["j-5"]


def test_an_adjudication_is_not_a_reviewer_agreeing(judged, carol, dave):
    adjudication.result_settle(
        request=judged["j-2"], adjudicator=dave, quality=95, category="good", tags=[], notes=""
    )
    assert Judgment.objects.filter(request=judged["j-2"]).count() == 2
    assert "j-2" not in exported({"agreed_quality_min": "80"}, carol)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"agreed_quality_min": "101"}, "less than or equal to 100"),
        ({"agreed_quality_min": "eighty"}, "whole number"),
        ({"agreed_quality_min": "80", "agreed_reviewers": "1"}, "greater than or equal to 2"),
        ({"agreed_category": "x" * 5000}, "Choose one of excellent, good"),
    ],
)
def test_bad_agreement_filters_are_refused_and_record_nothing(judged, carol, params, message):
    with pytest.raises(services.ExportError) as raised:
        services.export_create(
            params={"format": "csv", "starred": "any", **params}, user=carol, origin="viewer"
        )
    assert message in raised.value.message
    assert len(raised.value.message) < 1000  # the bad value is not echoed back whole
    assert not Export.objects.exists()


def test_the_panel_offers_the_agreement_filters_and_counts_them(judged, carol_client):
    page = carol_client.get("/exports/").content.decode()
    for name in ("agreed_quality_min", "agreed_category", "agreed_reviewers"):
        assert f'name="{name}"' in page
    count = carol_client.get(
        "/api/exports/count",
        {"format": "csv", "starred": "any", "agreed_quality_min": "80"},
    )
    assert count.status_code == 200
    assert count.json() == {"rows": 2}
    refused = carol_client.get(
        "/api/exports/count", {"format": "csv", "starred": "any", "agreed_reviewers": "0"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
