"""The /v1 OpenAPI schema: OpenAI's shapes, and a live server that keeps to it.

The fuzzing half is schemathesis against the live server: every operation gets
generated valid and invalid requests (with and without a key), and each answer
is checked for 5xx, status codes, content types, headers and body shapes the
schema does not allow, and for success without authentication.
"""

import json
import typing

import pytest
import schemathesis
from django.urls import URLPattern
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from openai.types import Batch, FileDeleted, FileObject, Model
from openai.types.batch_error import BatchError
from openai.types.batch_request_counts import BatchRequestCounts
from openai.types.batch_usage import BatchUsage
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from batchserver.urls import api as api_urls
from tests.factories import chat_requests

SDK_SHAPES = {
    "Batch": Batch,
    "File": FileObject,
    "FileDeleted": FileDeleted,
    "Model": Model,
    "RequestCounts": BatchRequestCounts,
    "Usage": BatchUsage,
    "LineError": BatchError,
}


@pytest.fixture
def openapi(api_url) -> dict:
    import httpx

    response = httpx.get(f"{api_url}/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_served_without_a_key_and_describes_every_v1_route(openapi):
    routes = {
        "/" + str(p.pattern).replace("<str:", "{").replace("<path:", "{").replace(">", "}")
        for p in api_urls.urlpatterns
        if isinstance(p, URLPattern) and str(p.pattern).startswith("v1/")
    }
    routes.discard("/v1/openapi.json")
    assert set(openapi["paths"]) == routes
    assert openapi["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from create_api_key.",
    }
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation["security"] == [{"ApiKeyAuth": []}], where
            error = {"$ref": "#/components/schemas/Error"}
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == error


@pytest.mark.parametrize("component", sorted(SDK_SHAPES))
def test_each_object_has_the_fields_of_the_openai_sdk_model(openapi, component):
    sdk_model = SDK_SHAPES[component]
    schema = openapi["components"]["schemas"][component]
    ours = set(schema["properties"])
    assert ours <= set(sdk_model.model_fields), ours - set(sdk_model.model_fields)
    required_by_sdk = {n for n, f in sdk_model.model_fields.items() if f.is_required()}
    assert required_by_sdk <= set(schema["required"]), required_by_sdk - set(schema["required"])


def test_enums_are_openai_values(openapi):
    schemas = openapi["components"]["schemas"]
    status = schemas["Batch"]["properties"]["status"]["enum"]
    assert set(status) == set(typing.get_args(Batch.model_fields["status"].annotation))
    purposes = schemas["File"]["properties"]["purpose"]["enum"]
    assert set(purposes) <= set(typing.get_args(FileObject.model_fields["purpose"].annotation))


# --- Fuzzing the live server --------------------------------------------------


def generated_schema() -> dict:
    """The schema as the server generates it (collection time has no live server)."""
    from drf_spectacular.renderers import OpenApiJsonRenderer

    from batches.openapi import SchemaGenerator

    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


def test_the_served_schema_is_the_generated_one(openapi):
    assert openapi == generated_schema()


schema = schemathesis.openapi.from_dict(
    generated_schema(),
    config=schemathesis.Config.from_dict(
        {
            "checks": {
                # A well-formed create may still meet a reused Idempotency-Key (422)
                # or an id that is not the key's (404): documented, not a rejection.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "404", "409", "422", "429"]
                }
            }
        }
    ),
)


ANSWER_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]


class FuzzedKey:
    """The API key the fuzzer sends: made per test, read by the auth provider."""

    value = ""


@schema.auth()
class BearerKey:
    # Given as schemathesis auth (not a plain header) so that its ignored_auth
    # check also replays every successful request without a key and with a
    # wrong one, and insists on a 401.
    def get(self, case, ctx):
        return FuzzedKey.value

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def existing(openai_client, alice_key, q_sync, monkeypatch) -> dict:
    """A real file and a finished batch of the key's, so ids can hit real objects."""
    monkeypatch.setattr(FuzzedKey, "value", alice_key)
    upload = openai_client.files.create(file=("in.jsonl", chat_requests(3)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return {"file_id": upload.id, "batch_id": batch.id}


@pytest.mark.fuzz
@schema.parametrize()
# 100 examples per operation, the same ones every run so that CI is repeatable
# (about 25 s); 400 random ones per operation found nothing more when tried.
@hypothesis_settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_live_server_keeps_to_its_schema(case, live_server, existing):
    case.call_and_validate(base_url=live_server.url)
    # Generated ids are almost never real ones: ask again about objects that exist,
    # checking the answer (the rest of the case may be invalid on purpose).
    real = {k: v for k, v in existing.items() if k in (case.path_parameters or {})}
    if real:
        case.path_parameters = {**case.path_parameters, **real}
        case.call_and_validate(base_url=live_server.url, checks=ANSWER_CHECKS)
