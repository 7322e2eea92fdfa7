"""The /v1 surface's errors: every one leaves in OpenAI's envelope,
`{"error": {"message", "type", "param", "code"}}`.

Services raise core.exceptions.ApplicationError; DRF raises its own
exceptions (validation, authentication, throttling); Django raises Http404,
PermissionDenied and, for a request it refuses to read, SuspiciousOperation.
openai_exception_handler renders all of them; json_error_view,
bad_request_view and csrf_failure answer for what never reaches a DRF view.
"""

import logging

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.response import Response

from core.exceptions import ApplicationError, error_body, error_type
from core.text import clipped

logger = logging.getLogger(__name__)


def openai_exception_handler(exc, context):
    """DRF exception handler: every exception, expected or not, in the envelope."""
    if isinstance(exc, SuspiciousOperation):
        exc = request_error(exc)
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
        if isinstance(exc, exceptions.ParseError):
            code = "parse_error"  # a body that is not JSON, or not multipart as announced
        if isinstance(exc, exceptions.NotAuthenticated):
            message = (
                "You didn't provide an API key. Provide it in the Authorization header "
                "(Authorization: Bearer YOUR_KEY)."
            )
        else:
            message = clipped(str(exc.detail))
        body = error_body(message, type=error_type(exc.status_code), code=code)
        return Response(body, status=exc.status_code, headers=headers)

    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(_SERVER_ERROR, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


_SERVER_ERROR = error_body(
    "The server had an error while processing your request.", type="server_error"
)

# A param named after a client's dict key is cut to this.
QUOTED_PARAM_MAX_CHARS = 100

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
    # DRF's messages may echo the value (`"…" is not a valid choice.`) and a
    # dict field's errors are keyed by the client's keys: both are cut short.
    message = clipped(str(detail))
    prefix = clipped(prefix, QUOTED_PARAM_MAX_CHARS)
    if prefix and not message.startswith(prefix):
        message = f"Invalid '{prefix}': {message}"
    return prefix or None, message


def request_error(exc: SuspiciousOperation) -> ApplicationError:
    """What a request Django refuses to read (too big, too many parts, a bad
    Host) tells the client: a 400 or 413 in the envelope, never a 500."""
    if isinstance(exc, RequestDataTooBig):
        return ApplicationError(
            f"The request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
            "byte limit.",
            code="request_too_large",
            status=413,
        )
    if isinstance(exc, TooManyFilesSent):
        return ApplicationError(
            "An upload carries exactly one file, in the 'file' part.",
            param="file",
            code="too_many_files",
        )
    if isinstance(exc, TooManyFieldsSent):
        return ApplicationError(
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields.",
            code="too_many_fields",
        )
    if isinstance(exc, DisallowedHost):
        return ApplicationError(
            "The Host header names a host this server does not serve (ALLOWED_HOSTS).",
            code="invalid_host",
        )
    return ApplicationError("The request could not be read.", code="bad_request")


def json_error_view(status_code: int, message: str, code: str | None):
    """A plain Django view for URLs outside DRF (unknown paths, crashes)."""

    def view(request, exception=None):
        body = error_body(message, type=error_type(status_code), code=code)
        return JsonResponse(body, status=status_code)

    return view


def bad_request_view(request, exception=None):
    """handler400 of the API: what Django refused before or outside a view
    (a bad Host header in the middleware, a body too big to read), in the envelope."""
    if isinstance(exception, SuspiciousOperation):
        error = request_error(exception)
    else:
        error = ApplicationError("Bad request.", code="bad_request")
    return JsonResponse(error.as_body(), status=error.status)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW. The API uses no cookies, so its views are exempt, but
    Django's CSRF check still answers a POST to its plain GET views (/healthz,
    /readyz, /metrics) before they run: on port 4080 the answer is the 405 it
    means, in the envelope. The viewer keeps Django's page."""
    if getattr(request, "urlconf", settings.ROOT_URLCONF) == settings.API_URLCONF:
        response = json_error_view(
            405, f"Method {request.method} is not allowed here.", "method_not_allowed"
        )(request)
        response["Allow"] = "GET, HEAD"
        return response
    return django_csrf_failure(request, reason=reason)


class IgnoreAcceptHeader(BaseContentNegotiation):
    """Answer in JSON (or the view's raw bytes) whatever the client's Accept says.

    The SDK asks for `application/binary` when downloading content; OpenAI's API
    does not negotiate, and neither do we.
    """

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
