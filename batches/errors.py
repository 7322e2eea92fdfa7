"""The /v1 surface's errors: every one leaves in OpenAI's envelope,
`{"error": {"message", "type", "param", "code"}}`.

Services raise core.exceptions.ApplicationError; DRF raises its own
exceptions (validation, authentication, throttling); Django raises Http404 and
PermissionDenied. openai_exception_handler renders all of them, and
json_error_view answers for what never reaches a DRF view.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.response import Response

from core.exceptions import ApplicationError, error_body, error_type

logger = logging.getLogger(__name__)


def openai_exception_handler(exc, context):
    """DRF exception handler: every exception, expected or not, in the envelope."""
    if isinstance(exc, ApplicationError):
        return Response(exc.as_body(), status=exc.status)

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
        code = _CODES_BY_STATUS.get(exc.status_code)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = (
                "You didn't provide an API key. Provide it in the Authorization header "
                "(Authorization: Bearer YOUR_KEY)."
            )
        else:
            message = str(exc.detail)
        body = error_body(message, type=error_type(exc.status_code), code=code)
        return Response(body, status=exc.status_code, headers=headers)

    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(_SERVER_ERROR, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


_SERVER_ERROR = error_body(
    "The server had an error while processing your request.", type="server_error"
)

_CODES_BY_STATUS = {
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
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
        body = error_body(message, type=error_type(status_code), code=code)
        return JsonResponse(body, status=status_code)

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
