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
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from batches import idempotency, selectors, services
from batches.engines import served_models
from batches.errors import ApiError, NotFound, json_error_view
from batches.finalize import output_lines
from batches.models import File

STARTED_AT = int(time.time())


class UnixTime(serializers.Field):
    def to_representation(self, value):
        return int(value.timestamp())


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 5 into "5"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("must be a string.")
        return super().to_internal_value(data)


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
        view = views.get(request.method)
        if view is None:
            return json_error_view(
                405, f"Method {request.method} is not allowed here.", "method_not_allowed"
            )(request)
        return view(request, *args, **kwargs)

    return dispatch


# --- Files -------------------------------------------------------------------


class FileOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    bytes = serializers.IntegerField()
    created_at = UnixTime()
    expires_at = UnixTime(allow_null=True)
    filename = serializers.CharField()
    purpose = serializers.CharField()
    status = serializers.SerializerMethodField()
    status_details = serializers.SerializerMethodField()

    def get_object(self, file) -> str:
        return "file"

    def get_status(self, file) -> str:
        return "processed"

    def get_status_details(self, file) -> None:
        return None


class FileCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=False)
        purpose = serializers.CharField()

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

    def post(self, request):
        data = request.data  # parses the multipart body, streaming the file to disk
        if getattr(request, "upload_too_large", False):  # set by LimitedTemporaryFileUploadHandler
            raise ApiError(
                f"The file is larger than the {settings.MAX_UPLOAD_BYTES} byte limit.",
                param="file",
                code="file_too_large",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        serializer = self.InputSerializer(data=data)
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
        after = serializers.CharField(required=False)
        limit = serializers.IntegerField(min_value=1, max_value=10_000, default=10_000)
        order = serializers.ChoiceField(choices=["asc", "desc"], default="desc")
        purpose = serializers.CharField(required=False)

    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        files, has_more = selectors.files_list(
            owner=request.user,
            purpose=filters.validated_data.get("purpose"),
            after=filters.validated_data.get("after"),
            limit=filters.validated_data["limit"],
            order=filters.validated_data["order"],
        )
        return Response(_list_body(files, FileOutputSerializer, has_more))


class FileRetrieveApi(APIView):
    def get(self, request, file_id: str):
        file = selectors.file_get(owner=request.user, file_id=file_id)
        return Response(FileOutputSerializer(file).data)


class FileDeleteApi(APIView):
    def delete(self, request, file_id: str):
        file = selectors.file_get(owner=request.user, file_id=file_id)
        services.file_delete(file=file)
        return Response({"id": file.public_id, "object": "file", "deleted": True})


class FileContentApi(APIView):
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


class BatchOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    endpoint = serializers.CharField()
    model = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField()
    input_file_id = serializers.CharField(source="input_file.public_id")
    completion_window = serializers.CharField()
    status = serializers.CharField()
    output_file_id = serializers.CharField(source="output_file.public_id", default=None)
    error_file_id = serializers.CharField(source="error_file.public_id", default=None)
    created_at = UnixTime()
    in_progress_at = UnixTime(allow_null=True)
    expires_at = UnixTime()
    finalizing_at = UnixTime(allow_null=True)
    completed_at = UnixTime(allow_null=True)
    failed_at = UnixTime(allow_null=True)
    expired_at = UnixTime(allow_null=True)
    cancelling_at = UnixTime(allow_null=True)
    cancelled_at = UnixTime(allow_null=True)
    request_counts = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()
    metadata = serializers.JSONField()

    def get_object(self, batch) -> str:
        return "batch"

    def get_model(self, batch) -> str | None:
        return batch.model or None

    def get_errors(self, batch) -> dict | None:
        if not batch.errors:
            return None
        return {"object": "list", "data": batch.errors}

    def get_request_counts(self, batch) -> dict:
        return {
            "total": batch.total_requests,
            "completed": batch.completed_requests,
            "failed": batch.failed_requests,
        }

    def get_usage(self, batch) -> dict:
        return {
            "input_tokens": batch.input_tokens,
            "input_tokens_details": {"cached_tokens": batch.cached_tokens},
            "output_tokens": batch.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": batch.input_tokens + batch.output_tokens,
        }


class BatchCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        class ExpiresAfterSerializer(serializers.Serializer):
            anchor = serializers.ChoiceField(choices=["created_at"])
            seconds = serializers.IntegerField(
                min_value=services.MIN_EXPIRES_AFTER, max_value=services.MAX_EXPIRES_AFTER
            )

        input_file_id = StrictCharField()
        endpoint = StrictCharField()
        completion_window = StrictCharField()
        metadata = serializers.DictField(
            child=StrictCharField(max_length=512, allow_blank=True),
            required=False,
            allow_null=True,
        )
        output_expires_after = ExpiresAfterSerializer(required=False)

        def validate_metadata(self, metadata):
            if metadata is None:
                return None
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
        after = serializers.CharField(required=False)
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)

    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        batches, has_more = selectors.batches_list(
            owner=request.user,
            after=filters.validated_data.get("after"),
            limit=filters.validated_data["limit"],
        )
        return Response(_list_body(batches, BatchOutputSerializer, has_more))


class BatchRetrieveApi(APIView):
    def get(self, request, batch_id: str):
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        return Response(BatchOutputSerializer(batch).data)


class BatchCancelApi(APIView):
    def post(self, request, batch_id: str):
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        batch = services.batch_cancel(batch=batch)
        return Response(BatchOutputSerializer(batch).data)


class BatchResultsApi(APIView):
    """The output JSONL of a finished batch (the seed's download).

    `?partial=true` streams the lines completed so far while the batch runs.
    """

    def get(self, request, batch_id: str):
        batch = selectors.batch_get(owner=request.user, batch_id=batch_id)
        if request.query_params.get("partial") == "true" and not batch.is_terminal:
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
        if batch.output_file.deleted_at is not None:
            raise NotFound("File object", batch.output_file.public_id, param="output_file_id")
        return _file_download(batch.output_file)


# --- Models ------------------------------------------------------------------


def _model_body(name: str) -> dict:
    return {"id": name, "object": "model", "created": STARTED_AT, "owned_by": "batchserver"}


class ModelListApi(APIView):
    def get(self, request):
        return Response({"object": "list", "data": [_model_body(m) for m in served_models()]})


class ModelRetrieveApi(APIView):
    def get(self, request, model: str):
        if model not in served_models():
            raise NotFound("model", model, param="model")
        return Response(_model_body(model))
