"""Every /v1 error leaves in OpenAI's envelope:
`{"error": {"message", "type", "param", "code"}}`.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with an OpenAI type, param and code."""

    status_code = status.HTTP_400_BAD_REQUEST
    error_type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, object_name: str, object_id: str, *, param: str = "id"):
        super().__init__(f"No such {object_name}: {object_id}", param=param, code="not_found")


def error_body(message: str, *, type: str, param=None, code=None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_exception_handler(exc, context):
    """DRF exception handler: every exception, expected or not, in the envelope."""
    if isinstance(exc, ApiError):
        body = error_body(exc.message, type=exc.error_type, param=exc.param, code=exc.code)
        return Response(body, status=exc.status_code)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        body = error_body(message, type="invalid_request_error", param=param, code="invalid_value")
        return Response(body, status=status.HTTP_400_BAD_REQUEST)

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        error_type, code = _TYPES_BY_STATUS.get(exc.status_code, ("invalid_request_error", None))
        if isinstance(exc, exceptions.NotAuthenticated):
            message = (
                "You didn't provide an API key. Provide it in the Authorization header "
                "(Authorization: Bearer YOUR_KEY)."
            )
        else:
            message = str(exc.detail)
        body = error_body(message, type=error_type, code=code)
        return Response(body, status=exc.status_code, headers=headers)

    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(_SERVER_ERROR, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


_SERVER_ERROR = error_body(
    "The server had an error while processing your request.", type="server_error"
)

_TYPES_BY_STATUS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    406: ("invalid_request_error", "not_acceptable"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def _first_validation_error(detail, prefix: str = "") -> tuple[str | None, str]:
    """The first (param, message) of a DRF ValidationError's nested detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            param = f"{prefix}.{name}" if prefix and name else (name or prefix)
            return _first_validation_error(value, param)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    message = str(detail)
    if prefix and not message.startswith(prefix):
        message = f"Invalid '{prefix}': {message}"
    return prefix or None, message


def json_error_view(status_code: int, message: str, code: str):
    """A plain Django view for URLs outside DRF (unknown paths, crashes)."""

    def view(request, exception=None):
        error_type = "server_error" if status_code >= 500 else "invalid_request_error"
        return JsonResponse(error_body(message, type=error_type, code=code), status=status_code)

    return view


class IgnoreAcceptHeader(BaseContentNegotiation):
    """Answer in JSON (or the view's raw bytes) whatever the client's Accept says.

    The SDK asks for `application/binary` when downloading content; OpenAI's API
    does not negotiate, and neither do we.
    """

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
