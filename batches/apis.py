"""The OpenAI-compatible /v1 API: one view per operation, thin.

Views parse with an input serializer, call a service or selector, and render
with an output serializer. Errors are raised and rendered by
batches.errors.openai_exception_handler.
"""

import time

import orjson
from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from batches import files, idempotency, selectors, services
from batches.engines import served_models
from batches.errors import json_error_view
from batches.models import File
from batches.openapi import BATCH_ID, FILE_ID, IDEMPOTENCY_KEY, JSONL_DOWNLOAD, error_responses
from batches.pipeline.finalize import output_lines
from batches.serializers import (
    BatchListSerializer,
    BatchOutputSerializer,
    CompletionWindowField,
    Constant,
    EndpointField,
    FileListSerializer,
    FileOutputSerializer,
    JsonlUploadField,
    Metadata,
    ModelOutputSerializer,
    ObjectIdField,
    list_body,
)
from batches.throttling import CreateRateThrottle
from core.exceptions import ApplicationError, NotFound

STARTED_AT = int(time.time())


def _plain(query_dict) -> dict:
    """A QueryDict as a plain dict, so that an empty value is a value to validate.

    DRF reads an empty form or query field as absent, which would let `?limit=`
    or `expires_after[seconds]=` through as if they had not been sent.
    """
    return query_dict.dict() if hasattr(query_dict, "dict") else dict(query_dict)


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
            raise ApplicationError(
                f"The upload is larger than the {settings.MAX_UPLOAD_BYTES} byte file limit.",
                param="file",
                code="file_too_large",
                status=413,
            )
        serializer = self.InputSerializer(data=_plain(data))
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data

        def fingerprint() -> str:
            # The file's bytes (read back from the temporary file) and the fields.
            fields["file"].seek(0)
            content = bytes.fromhex(files.sha256_of(fields["file"]))
            fields["file"].seek(0)
            others = {k: v for k, v in fields.items() if k != "file"}
            return idempotency.body_hash(content, orjson.dumps(others))

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
        return Response(list_body(files, FileOutputSerializer, has_more))


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
        return Response(list_body(batches, BatchOutputSerializer, has_more))


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
        output = selectors.batch_output_file(owner=request.user, batch=batch)
        if output is None:
            return HttpResponse(b"", content_type="application/octet-stream")
        return _file_download(output)


# --- Models ------------------------------------------------------------------


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
