"""The export panel, POST /api/export-gold-star, the admin's export, and loading the files."""

import csv
import io
import json
import zipfile
from urllib.parse import urlencode

import pytest
from django.test import Client

from exports import services
from exports.models import Export


def download(response) -> bytes:
    return b"".join(response.streaming_content)


def form_post(client, path: str, data: dict, **kwargs):
    """A POST as a browser sends a plain form (urlencoded)."""
    return client.post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded", **kwargs
    )


def test_the_seed_api_exports_and_records(curated, carol_client, carol):
    created = carol_client.post(
        "/api/export-gold-star",
        {"format": "icl", "filter": "quality_high"},
        content_type="application/json",
    )
    assert created.status_code == 201
    record = Export.objects.get()
    assert created.json() == {
        "id": record.pk,
        "format": "icl",
        "rows": 2,
        "skipped": 0,
        "files": record.files,
        "download_url": f"/exports/{record.pk}/download",
    }
    response = carol_client.get(created.json()["download_url"])
    assert response.status_code == 200
    assert response.streaming  # streamed from the file on disk
    assert "attachment" in response["Content-Disposition"]
    assert "gold_star_icl_" in response["Content-Disposition"]
    rows = [json.loads(line) for line in download(response).decode().splitlines()]
    assert [r["meta"]["custom_id"] for r in rows] == ["c-0", "c-2"]
    assert (record.user, record.origin, record.format, record.rows) == (carol, "viewer", "icl", 2)
    assert record.params["filter"] == "quality_high"


def test_a_split_fine_tuning_export_downloads_as_a_zip(curated, carol_client):
    # A plain form post (no script) is sent on to the download.
    response = form_post(
        carol_client,
        "/api/export-gold-star",
        {"format": "finetuning", "starred": "any", "split": "0.5", "seed": "1"},
    )
    assert response.status_code == 303
    assert response["Location"] == f"/exports/{Export.objects.get().pk}/download"
    response = carol_client.get(response["Location"])
    archive = zipfile.ZipFile(io.BytesIO(download(response)))
    assert sorted(archive.namelist()) == ["metadata.json", "train.jsonl", "validation.jsonl"]
    manifest = json.loads(archive.read("metadata.json"))
    assert sum(f["rows"] for f in manifest["files"]) == 8


def test_bad_requests_get_clear_errors_and_record_nothing(curated, carol_client):
    for options in (
        {"format": "pdf"},
        {"format": "icl", "quality_min": "x"},
        {"format": "icl", "filter": "sometimes"},
        {"format": "icl", "filter": ["all"]},
        ["format", "icl"],
    ):
        response = carol_client.post(
            "/api/export-gold-star", options, content_type="application/json"
        )
        assert response.status_code == 400, options
        assert response.json()["error"]["message"]
    assert not Export.objects.exists()


def test_an_error_does_not_echo_a_huge_value_back(curated, carol_client):
    for field in ("category", "filter", "format", "starred"):
        response = carol_client.get("/api/exports/count", {"format": "icl", field: "x" * 50_000})
        assert response.status_code == 400, field
        assert len(response.content) < 2_000, field


def test_the_panel_lists_exports_whatever_params_they_recorded(curated, carol_client):
    response = carol_client.post(
        "/api/export-gold-star",
        {"format": "icl", "items": "x", "keys": "y", "q": "", "note": "n" * 5000},
        content_type="application/json",
    )
    assert response.status_code == 201
    html = carol_client.get("/exports/").content.decode()
    assert "<code>items=x</code>" in html and "n" * 5000 not in html


def test_a_get_creates_no_export(curated, carol_client):
    response = carol_client.get("/api/export-gold-star?format=icl")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert not Export.objects.exists()


def test_creating_an_export_needs_the_csrf_token(curated, carol):
    client = Client(enforce_csrf_checks=True)
    client.force_login(carol)
    response = form_post(client, "/api/export-gold-star", {"format": "icl"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not Export.objects.exists()
    html = client.get("/exports/").content.decode()
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    response = form_post(
        client, "/api/export-gold-star", {"format": "icl", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 303
    assert "csrfmiddlewaretoken" not in Export.objects.get().params  # never recorded


def test_the_count_is_known_before_downloading(curated, carol_client):
    assert carol_client.get("/api/exports/count?format=icl").json() == {"rows": 4}
    assert carol_client.get("/api/exports/count?format=icl&limit=3").json() == {"rows": 3}
    assert carol_client.get("/api/exports/count?format=preference").json() == {"rows": 1}
    assert carol_client.get("/api/exports/count?format=csv&starred=any").json() == {"rows": 8}
    assert carol_client.get("/api/exports/count?format=csv&category=good").json() == {"rows": 1}
    assert carol_client.get("/api/exports/count?format=zip").status_code == 400
    assert not Export.objects.exists()  # counting records nothing


def test_the_panel_lists_past_exports_for_download_again(curated, carol_client):
    services.export_create(params={"format": "csv"}, user=None, origin="command")
    html = carol_client.get("/exports/").content.decode()
    record = Export.objects.get()
    assert "results.csv" in html and record.files[0]["sha256"][:10] in html
    again = carol_client.get(f"/exports/{record.pk}/files/results.csv")
    assert download(again) == services.export_path(record, "results.csv").read_bytes()
    assert carol_client.get(f"/exports/{record.pk}/files/metadata.json").status_code == 200
    assert carol_client.get(f"/exports/{record.pk}/files/..%2f..%2fsecret_key").status_code == 404
    assert carol_client.get(f"/exports/{record.pk}/files/other.csv").status_code == 404


def test_the_export_panel_is_for_staff_only(curated, django_user_model):
    client = Client()
    assert client.get("/exports/").status_code == 302
    client.force_login(django_user_model.objects.create_user("eve"))
    assert client.get("/exports/").status_code == 302
    assert client.get("/exports/1/download").status_code == 302


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/export-gold-star"), ("get", "/api/exports/count?format=icl")],
)
def test_export_endpoints_answer_json_to_a_missing_session_or_a_non_staff_user(
    curated, django_user_model, method, path
):
    """The panel's script reads these answers; a redirect to the login page would break it."""
    client = Client()
    response = getattr(client, method)(path, {"format": "icl"} if method == "post" else None)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_authenticated"
    assert "Log in" in response.json()["error"]["message"]
    client.force_login(django_user_model.objects.create_user("eve"))
    response = getattr(client, method)(path, {"format": "icl"} if method == "post" else None)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Export.objects.exists()


def test_admin_export_selected_is_formula_safe_and_recorded(curated, admin_client):
    from batches.models import Request

    Request.objects.filter(custom_id="c-1").update(
        response={"choices": [{"message": {"role": "assistant", "content": "@SUM(A1)"}}]}
    )
    ids = [
        str(pk)
        for pk in Request.objects.filter(custom_id__in=["c-0", "c-1"]).values_list("pk", flat=True)
    ]
    response = admin_client.post(
        "/admin/batches/request/export/",
        {
            "format": "0",
            "export_items": ids,
            "resource": "0",
            **{
                f"resultresource_{n}": "on"
                for n in ["result_id", "custom_id", "response", "quality"]
            },
        },
    )
    assert response.status_code == 200, response.content[:500]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert len(rows) == 4
    assert {r["response"] for r in rows if r["custom_id"] == "c-1"} == {"'@SUM(A1)"}
    record = Export.objects.get()
    assert (record.origin, record.format, record.rows) == ("admin", "csv", 4)
    assert record.results.count() == 4


def test_fine_tuning_and_preference_files_load_with_datasets_and_trl(curated, carol, tiny_model):
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    finetuning = services.export_create(
        params={"format": "finetuning", "starred": "any"}, user=carol, origin="command"
    )
    preference = services.export_create(
        params={"format": "preference"}, user=carol, origin="command"
    )
    train = load_dataset(
        "json",
        data_files=str(services.export_path(finetuning, "finetuning_data.jsonl")),
        split="train",
    )
    assert train.num_rows == 8 and train.column_names == ["messages"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    for example in train:
        assert is_conversational(example)
        text = maybe_apply_chat_template(example, tokenizer)["text"]
        assert "<|im_start|>assistant" in text
    pairs = load_dataset(
        "json",
        data_files=str(services.export_path(preference, "preference_pairs.jsonl")),
        split="train",
    )
    assert pairs.num_rows == 1
    assert pairs.column_names == ["input", "preferred_output", "non_preferred_output"]
    assert pairs[0]["preferred_output"][0]["role"] == "assistant"
