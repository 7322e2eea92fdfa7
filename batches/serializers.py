"""The /v1 API's shapes: fields with OpenAI's rules, and the output serializers
that render files, batches and models exactly as OpenAI does.

Input serializers stay on their views (one per operation); what several views,
the viewer's endpoints or the schema share lives here.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from batches import selectors
from batches.models import Batch, File


class Constant(serializers.Field):
    """A field that is always `value`: OpenAI's `object: "file"` and the like."""

    def __init__(self, value, **kwargs):
        self.value = value
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, instance):
        return self.value


@extend_schema_field(OpenApiTypes.INT)
class UnixTime(serializers.Field):
    def to_representation(self, value):
        return int(value.timestamp())


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 5 into "5"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string.")
        return super().to_internal_value(data)


# The service checks these values (its errors name the accepted ones); the schema lists them.
@extend_schema_field({"type": "string", "enum": Batch.Endpoint.values})
class EndpointField(StrictCharField):
    pass


@extend_schema_field({"type": "string", "enum": ["24h"]})
class CompletionWindowField(StrictCharField):
    pass


@extend_schema_field({"type": "string", "pattern": selectors.PUBLIC_ID_PATTERN})
class ObjectIdField(StrictCharField):
    """A file or batch id; an id of any other form is not found (404), like a foreign one."""


# OpenAI's metadata limits.
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX_LENGTH = 64
METADATA_VALUE_MAX_LENGTH = 512


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": METADATA_MAX_PAIRS,
        "propertyNames": {"maxLength": METADATA_KEY_MAX_LENGTH, "pattern": "^[^\\x00]*$"},
        "additionalProperties": {
            "type": "string",
            "maxLength": METADATA_VALUE_MAX_LENGTH,
            "pattern": "^[^\\x00]*$",
        },
    }
)
class Metadata(serializers.DictField):
    """OpenAI's metadata: at most 16 pairs, keys ≤ 64 characters, values ≤ 512."""

    child = StrictCharField(
        max_length=METADATA_VALUE_MAX_LENGTH, allow_blank=True, trim_whitespace=False
    )

    def to_internal_value(self, data):
        metadata = super().to_internal_value(data)
        if len(metadata) > METADATA_MAX_PAIRS:
            raise serializers.ValidationError(
                f"at most {METADATA_MAX_PAIRS} key-value pairs are allowed."
            )
        for key in metadata:
            if "\x00" in key:
                raise serializers.ValidationError("keys may not contain NUL characters.")
            if len(key) > METADATA_KEY_MAX_LENGTH:
                raise serializers.ValidationError(
                    f"key {key[:20]!r}… is longer than {METADATA_KEY_MAX_LENGTH} characters."
                )
        return metadata


def list_serializer(item_serializer_class) -> serializers.Serializer:
    """The schema of OpenAI's list envelope around `item_serializer_class`."""
    name = item_serializer_class.__name__.removesuffix("OutputSerializer")
    return inline_serializer(
        f"{name}List",
        {
            "object": Constant("list"),
            "data": item_serializer_class(many=True),
            "first_id": serializers.CharField(allow_null=True),
            "last_id": serializers.CharField(allow_null=True),
            "has_more": serializers.BooleanField(),
        },
    )


def list_body(objects: list, serializer_class, has_more: bool) -> dict:
    data = serializer_class(objects, many=True).data
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


@extend_schema_serializer(component_name="File")
class FileOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = Constant("file")
    bytes = serializers.IntegerField()
    created_at = UnixTime()
    expires_at = UnixTime(allow_null=True)
    filename = serializers.CharField()
    purpose = serializers.ChoiceField(choices=File.Purpose.choices)
    # Uploads are validated when a batch reads them, so a stored file is processed.
    status = Constant("processed")
    status_details = serializers.SerializerMethodField()

    def get_status_details(self, file) -> str | None:
        return None


FileListSerializer = list_serializer(FileOutputSerializer)


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class JsonlUploadField(serializers.FileField):
    """The uploaded JSONL, streamed to a temporary file; empty files are refused."""

    def __init__(self, **kwargs):
        super().__init__(allow_empty_file=False, **kwargs)


class BatchErrorsSerializer(serializers.Serializer):
    class LineErrorSerializer(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        param = serializers.CharField(allow_null=True, required=False)
        line = serializers.IntegerField(allow_null=True, required=False)

    object = Constant("list")
    data = LineErrorSerializer(many=True)


class RequestCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="total_requests")
    completed = serializers.IntegerField(source="completed_requests")
    failed = serializers.IntegerField(source="failed_requests")


class UsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = inline_serializer(
        "InputTokensDetails", {"cached_tokens": serializers.IntegerField()}, source="*"
    )
    output_tokens = serializers.IntegerField()
    # No served model reasons in hidden tokens.
    output_tokens_details = inline_serializer(
        "OutputTokensDetails", {"reasoning_tokens": Constant(0)}, source="*"
    )
    total_tokens = serializers.SerializerMethodField()

    def get_total_tokens(self, batch) -> int:
        return batch.input_tokens + batch.output_tokens


@extend_schema_serializer(component_name="Batch")
class BatchOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = Constant("batch")
    endpoint = serializers.CharField()
    model = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField()
    # Imported batches (import_results) may have no input file.
    input_file_id = serializers.CharField(source="input_file.public_id", allow_null=True)
    completion_window = serializers.CharField()
    status = serializers.ChoiceField(choices=Batch.Status.choices)
    output_file_id = serializers.CharField(source="output_file.public_id", allow_null=True)
    error_file_id = serializers.CharField(source="error_file.public_id", allow_null=True)
    created_at = UnixTime()
    in_progress_at = UnixTime(allow_null=True)
    expires_at = UnixTime()
    finalizing_at = UnixTime(allow_null=True)
    completed_at = UnixTime(allow_null=True)
    failed_at = UnixTime(allow_null=True)
    expired_at = UnixTime(allow_null=True)
    cancelling_at = UnixTime(allow_null=True)
    cancelled_at = UnixTime(allow_null=True)
    request_counts = RequestCountsSerializer(source="*")
    usage = UsageSerializer(source="*")
    metadata = serializers.DictField(child=serializers.CharField(), allow_null=True)

    def get_model(self, batch) -> str | None:
        return batch.model or None

    @extend_schema_field(BatchErrorsSerializer(allow_null=True))
    def get_errors(self, batch) -> dict | None:
        if not batch.errors:
            return None
        return {"object": "list", "data": batch.errors}


BatchListSerializer = list_serializer(BatchOutputSerializer)


@extend_schema_serializer(component_name="Model")
class ModelOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = Constant("model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()
