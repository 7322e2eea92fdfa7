"""The OpenAPI description of /v1 (drf-spectacular), in OpenAI's shapes.

The schema is generated from the views and serializers that serve the API, so
it cannot drift from them; this module holds what the views cannot say for
themselves: the bearer scheme, the error envelope, constant fields and the
per-method views that share one path. Served at /v1/openapi.json; also
written by `manage.py spectacular --file openapi.yaml`.
"""

from django.conf import settings
from django.urls import path
from drf_spectacular import generators
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from batches import idempotency, selectors
from batches.serializers import Constant


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "batches.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from create_api_key.",
        }


class ConstantScheme(OpenApiSerializerFieldExtension):
    target_class = Constant

    def map_serializer_field(self, auto_schema, direction):
        value = self.target.value
        kinds = {bool: "boolean", int: "integer", str: "string"}
        return {"type": kinds[type(value)], "enum": [value]}


class ErrorSerializer(serializers.Serializer):
    class ErrorDetailSerializer(serializers.Serializer):
        message = serializers.CharField()
        type = serializers.CharField()
        param = serializers.CharField(allow_null=True)
        code = serializers.CharField(allow_null=True)

    error = ErrorDetailSerializer()


_ERROR_DESCRIPTIONS = {
    400: "Invalid request: the message, `param` and `code` say what to change.",
    401: "Missing, malformed, unknown or revoked API key.",
    404: "No such object for this key (another key's objects are not found either).",
    409: "The object is not in a state that allows this (or its create is still running).",
    413: "The upload is larger than the server's limit.",
    422: "This Idempotency-Key was used with a different body.",
    429: "Too many creates for this key; retry after `Retry-After` seconds.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error envelope under each status, plus 401 which every operation has."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[status])
        for status in sorted({401, *statuses})
    }


IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    {"type": "string", "pattern": idempotency.KEY_PATTERN},
    OpenApiParameter.HEADER,
    description=(
        "Repeating a create with the same key and body returns the first result; "
        "the same key with another body is 422."
    ),
)

FILE_ID = OpenApiParameter(
    "file_id", str, OpenApiParameter.PATH, pattern=selectors.PUBLIC_ID_PATTERN
)
BATCH_ID = OpenApiParameter(
    "batch_id", str, OpenApiParameter.PATH, pattern=selectors.PUBLIC_ID_PATTERN
)

JSONL_DOWNLOAD = OpenApiResponse(
    {"type": "string", "format": "binary"}, description="The file's bytes (JSONL)."
)


def drop_enum_ids(result, generator, request, public):
    """Postprocessing hook: remove drf-spectacular's internal `x-spec-enum-id`.

    Its own enum hook would remove them while moving enums into components;
    ours stay inline, as OpenAI writes them.
    """

    def walk(node):
        if isinstance(node, dict):
            node.pop("x-spec-enum-id", None)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result)
    return result


class EndpointEnumerator(generators.EndpointEnumerator):
    def _get_api_endpoints(self, patterns, prefix):
        return super()._get_api_endpoints(_per_method(patterns or self.patterns), prefix)


class SchemaGenerator(generators.SchemaGenerator):
    """drf-spectacular's generator for the API port, seeing through `apis.method_dispatch`."""

    endpoint_inspector_cls = EndpointEnumerator

    def __init__(self, *args, urlconf=None, **kwargs):
        # ROOT_URLCONF is the viewer's, whose JSON endpoints are not part of the API.
        super().__init__(*args, urlconf=urlconf or settings.API_URLCONF, **kwargs)


def _per_method(urlpatterns) -> list:
    """Each method's view on a pattern of its own.

    Our list and create views share a path behind `method_dispatch`, which only
    dispatches; the generator merges operations found on equal paths.
    """
    patterns = []
    for pattern in urlpatterns:
        views = getattr(getattr(pattern, "callback", None), "views", None)
        if views is None:
            patterns.append(pattern)
        else:
            patterns.extend(path(str(pattern.pattern), view) for view in views.values())
    return patterns
