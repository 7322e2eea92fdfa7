"""The OpenAI-compatible /v1 API: one view per operation, thin.

Views parse with an input serializer, call a service or selector, and render
with an output serializer. Errors are raised and rendered by
batches.errors.openai_exception_handler.
"""

import hashlib
import time

import orjson
from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from batches import idempotency, selectors, services
from batches.engines import served_models
from batches.errors import ApiError, NotFound, json_error_view
from batches.finalize import output_lines
from batches.models import Batch, File
from batches.openapi import Constant, error_responses
from batches.throttling import CreateRateThrottle

STARTED_AT = int(time.time())


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


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": 16,
        "propertyNames": {"maxLength": 64, "pattern": "^[^\\x00]*$"},
        "additionalProperties": {"type": "string", "maxLength": 512, "pattern": "^[^\\x00]*$"},
    }
)
class Metadata(serializers.DictField):
    """OpenAI's metadata: at most 16 pairs, keys ≤ 64 characters, values ≤ 512."""

    child = StrictCharField(max_length=512, allow_blank=True, trim_whitespace=False)

    def to_internal_value(self, data):
        metadata = super().to_internal_value(data)
        if len(metadata) > 16:
            raise serializers.ValidationError("at most 16 key-value pairs are allowed.")
        for key in metadata:
            if "\x00" in key:
                raise serializers.ValidationError("keys may not contain NUL characters.")
            if len(key) > 64:
                raise serializers.ValidationError(
                    f"key {key[:20]!r}… is longer than 64 characters."
                )
        return metadata


def _plain(query_dict) -> dict:
    """A QueryDict as a plain dict, so that an empty value is a value to validate.

    DRF reads an empty form or query field as absent, which would let `?limit=`
    or `expires_after[seconds]=` through as if they had not been sent.
    """
    return query_dict.dict() if hasattr(query_dict, "dict") else dict(query_dict)


def _list_serializer(item_serializer_class) -> serializers.Serializer:
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


def _list_body(objects: list, serializer_class, has_more: bool) -> dict:
    data = serializer_class(objects, many=True).data
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def method_dispatch(**views):
    """One URL, one view per HTTP method (OpenAI puts list and create on one path)."""

    @csrf_exempt  # bearer-key API: no cookies, so no CSRF to defend against
    def dispatch(request, *args, **kwargs):
        view = views.get(request.method) or (views.get("GET") if request.method == "HEAD" else None)
        if view is None:
            response = json_error_view(
                405, f"Method {request.method} is not allowed here.", "method_not_allowed"
            )(request)
            response["Allow"] = ", ".join(views)
            return response
        return view(request, *args, **kwargs)

    dispatch.views = views  # read by batches.openapi._per_method
    return dispatch


# --- Files -------------------------------------------------------------------


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


FileListSerializer = _list_serializer(FileOutputSerializer)


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class JsonlUploadField(serializers.FileField):
    """The uploaded JSONL, streamed to a temporary file; empty files are refused."""

    def __init__(self, **kwargs):
        super().__init__(allow_empty_file=False, **kwargs)


IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    {"type": "string", "pattern": idempotency.KEY_PATTERN},
    OpenApiParameter.HEADER,
    description=(
        "Repeating a create with the same key and body returns the first result; "
        "the same key with another body is 422."
    ),
)


class FileCreateApi(APIView):
    throttle_classes = [CreateRateThrottle]

    @extend_schema_serializer(component_name="FileCreate")
    class InputSerializer(serializers.Serializer):
        file = JsonlUploadField()
        purpose = serializers.ChoiceField(choices=[File.Purpose.BATCH])

        def get_fields(self):
            # The SDK sends `expires_after` as bracketed multipart fields.
            fields = super().get_fields()
            fields["expires_after[anchor]"] = serializers.ChoiceField(
                choices=["created_at"], required=False
            )
            fields["expires_after[seconds]"] = serializers.IntegerField(
                min_value=services.MIN_EXPIRES_AFTER,
                max_value=services.MAX_EXPIRES_AFTER,
                required=False,
            )
            return fields

    @extend_schema(
        operation_id="createFile",
        summary="Upload a JSONL file of batch requests",
        request={"multipart/form-data": InputSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={200: FileOutputSerializer, **error_responses(400, 409, 413, 422, 429)},
    )
    def post(self, request):
        data = request.data  # parses the multipart body, streaming the file to disk
        if getattr(request, "upload_too_large", False):  # set by LimitedTemporaryFileUploadHandler
            raise ApiError(
                f"The file is larger than the {settings.MAX_UPLOAD_BYTES} byte limit.",
                param="file",
                code="file_too_large",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        serializer = self.InputSerializer(data=_plain(data))
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data

        def fingerprint() -> str:
            # The file's bytes (read back from the temporary file) and the fields.
            fields["file"].seek(0)
            digest = hashlib.sha256()
            while block := fields["file"].read(1 << 20):
                digest.update(block)
            fields["file"].seek(0)
            others = {k: v for k, v in fields.items() if k != "file"}
            return idempotency.body_hash(digest.digest(), orjson.dumps(others))

        def create() -> Response:
            file = services.file_create(
                owner=request.user,
                uploaded=fields["file"],
                purpose=fields["purpose"],
                expires_after_seconds=fields.get("expires_after[seconds]"),
            )
            return Response(FileOutputSerializer(file).data)

        return idempotency.idempotent(
            request, endpoint="POST /v1/files", fingerprint=fingerprint, create=create
        )


class FileListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        after = ObjectIdField(required=False)
        limit = serializers.IntegerField(min_value=1, max_value=10_000, default=10_000)
        order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")
        purpose = serializers.ChoiceField(choices=File.Purpose.choices, required=False)

    @extend_schema(
        operation_id="listFiles",
        summary="List the key's files",
        parameters=[FilterSerializer],
        responses={200: FileListSerializer, **error_responses(400, 404)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=_plain(request.query_params))
        filters.is_valid(raise_exception=True)
        files, has_more = selectors.files_list(
            owner=request.user,
            purpose=filters.validated_data.get("purpose"),
            after=filters.validated_data.get("after"),
            limit=filters.validated_data["limit"],
            order=filters.validated_data["order"],
        )
        return Response(_list_body(files, FileOutputSerializer, has_more))


FILE_ID = OpenApiParameter(
    "file_id", str, OpenApiParameter.PATH, pattern=selectors.PUBLIC_ID_PATTERN
)


class FileRetrieveApi(APIView):
    @extend_schema(
        operation_id="retrieveFile",
        summary="Retrieve a file",
        parameters=[FILE_ID],
        responses={200: FileOutputSerializer, **error_responses(404)},
    )
    def get(self, request, file_id: str):
        file = selectors.file_get(owner=request.user, file_id=file_id)
        return Response(FileOutputSerializer(file).data)


class FileDeleteApi(APIView):
    @extend_schema(
        operation_id="deleteFile",
        summary="Delete a file",
        parameters=[FILE_ID],
        responses={
            200: inline_serializer(
                "FileDeleted",
                {
                    "id": serializers.CharField(),
                    "object": Constant("file"),
                    "deleted": Constant(True),
                },
            ),
            **error_responses(404),
        },
    )
    def delete(self, request, file_id: str):
        file = selectors.file_get(owner=request.user, file_id=file_id)
        services.file_delete(file=file)
        return Response({"id": file.public_id, "object": "file", "deleted": True})


JSONL_DOWNLOAD = OpenApiResponse(
    {"type": "string", "format": "binary"}, description="The file's bytes (JSONL)."
)


class FileContentApi(APIView):
    @extend_schema(
        operation_id="downloadFile",
        summary="Download a file's content",
        parameters=[FILE_ID],
        responses={(200, "application/octet-stream"): JSONL_DOWNLOAD, **error_responses(404)},
    )
    def get(self, request, file_id: str):
        file = selectors.file_get(owner=request.user, file_id=file_id)
        return _file_download(file)


def _file_download(file: File) -> FileResponse:
    """Raw bytes, streamed from storage (sendfile where the server has it)."""
    try:
        handle = file.content.open("rb")
    except FileNotFoundError:
        raise NotFound("File object", file.public_id) from None
    return FileResponse(
        handle,
        as_attachment=True,
        filename=file.filename,
        content_type="application/octet-stream",
    )


# --- Batches -----------------------------------------------------------------


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


BatchListSerializer = _list_serializer(BatchOutputSerializer)
BATCH_ID = OpenApiParameter(
    "batch_id", str, OpenApiParameter.PATH, pattern=selectors.PUBLIC_ID_PATTERN
)


class BatchCreateApi(APIView):
    throttle_classes = [CreateRateThrottle]

    @extend_schema_serializer(component_name="BatchCreate")
    class InputSerializer(serializers.Serializer):
        class ExpiresAfterSerializer(serializers.Serializer):
            anchor = serializers.ChoiceField(choices=["created_at"])
            seconds = serializers.IntegerField(
                min_value=services.MIN_EXPIRES_AFTER, max_value=services.MAX_EXPIRES_AFTER
            )

        input_file_id = ObjectIdField()
        endpoint = EndpointField()
        completion_window = CompletionWindowField()
        metadata = Metadata(required=False, allow_null=True)
        output_expires_after = ExpiresAfterSerializer(required=False)

    @extend_schema(
        operation_id="createBatch",
        summary="Create a batch from an uploaded file",
        request={"application/json": InputSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={200: BatchOutputSerializer, **error_responses(400, 404, 409, 422, 429)},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def create() -> Response:
            batch = services.batch_create(
                owner=request.user,
                input_file_id=data["input_file_id"],
                endpoint=data["endpoint"],
                completion_window=data["completion_window"],
                metadata=data.get("metadata"),
                output_expires_after_seconds=(data.get("output_expires_after") or {}).get(
                    "seconds"
                ),
                api_key=request.auth,
            )
            return Response(BatchOutputSerializer(batch).data)

        return idempotency.idempotent(
            request,
            endpoint="POST /v1/batches",
            fingerprint=lambda: idempotency.json_hash(request.data),
            create=create,
        )


class BatchListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        after = ObjectIdField(required=False)
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)

    @extend_schema(
        operation_id="listBatches",
        summary="List the key's batches, newest first",
        parameters=[FilterSerializer],
        responses={200: BatchListSerializer, **error_responses(400, 404)},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=_plain(request.query_params))
        filters.is_valid(raise_exception=True)
        batches, has_more = selectors.batches_list(
            owner=request.user,
            after=filters.validated_data.get("after"),
            limit=filters.validated_data["limit"],
        )
        return Response(_list_body(batches, BatchOutputSerializer, has_more))


class BatchRetrieveApi(APIView):
    @extend_schema(
        operation_id="retrieveBatch",
        summary="Retrieve a batch",
        parameters=[BATCH_ID],
        responses={200: BatchOutputSerializer, **error_responses(404)},
    )
    def get(self, request, batch_id: str):
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        return Response(BatchOutputSerializer(batch).data)


class BatchCancelApi(APIView):
    @extend_schema(
        operation_id="cancelBatch",
        summary="Cancel a batch",
        request=None,
        parameters=[BATCH_ID],
        responses={200: BatchOutputSerializer, **error_responses(404, 409)},
    )
    def post(self, request, batch_id: str):
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        batch = services.batch_cancel(batch=batch)
        return Response(BatchOutputSerializer(batch).data)


class BatchResultsApi(APIView):
    """The output JSONL of a finished batch (the seed's download).

    `?partial=true` streams the lines completed so far while the batch runs.
    """

    class FilterSerializer(serializers.Serializer):
        partial = serializers.BooleanField(
            default=False, help_text="While the batch runs, stream the lines completed so far."
        )

    @extend_schema(
        operation_id="downloadBatchResults",
        summary="Download a batch's output lines",
        parameters=[BATCH_ID, FilterSerializer],
        responses={
            (200, "application/octet-stream"): JSONL_DOWNLOAD,
            **error_responses(400, 404, 409),
        },
    )
    def get(self, request, batch_id: str):
        filters = self.FilterSerializer(data=_plain(request.query_params))
        filters.is_valid(raise_exception=True)
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        if filters.validated_data["partial"] and not batch.is_terminal:
            return StreamingHttpResponse(
                output_lines(batch), content_type="application/octet-stream"
            )
        if not batch.is_terminal:
            raise ApiError(
                f"Batch {batch.public_id} is {batch.status}; results are available "
                "once it has finished (or as they come with ?partial=true).",
                param="batch_id",
                code="batch_not_finished",
                status_code=status.HTTP_409_CONFLICT,
            )
        if batch.output_file is None:
            return HttpResponse(b"", content_type="application/octet-stream")
        # The same answers as files.content: 404 once deleted or expired.
        output = selectors.file_get(owner=request.user, file_id=batch.output_file.public_id)
        return _file_download(output)


# --- Models ------------------------------------------------------------------


@extend_schema_serializer(component_name="Model")
class ModelOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = Constant("model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


def _model_body(name: str) -> dict:
    return {"id": name, "object": "model", "created": STARTED_AT, "owned_by": "batchserver"}


class ModelListApi(APIView):
    @extend_schema(
        operation_id="listModels",
        summary="List the models this server runs",
        responses={
            200: inline_serializer(
                "ModelList",
                {"object": Constant("list"), "data": ModelOutputSerializer(many=True)},
            ),
            **error_responses(),
        },
    )
    def get(self, request):
        return Response({"object": "list", "data": [_model_body(m) for m in served_models()]})


class ModelRetrieveApi(APIView):
    @extend_schema(
        operation_id="retrieveModel",
        summary="Retrieve a model",
        responses={200: ModelOutputSerializer, **error_responses(404)},
    )
    def get(self, request, model: str):
        if model not in served_models():
            raise NotFound("model", model, param="model")
        return Response(_model_body(model))
