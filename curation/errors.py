"""The viewer's JSON errors (port 8001): `{"error": {"message", "type", "param", "code"}}`,
the shape the viewer's JavaScript reads. Every JSON endpoint of the viewer is a DRF view
on curation.apis.ViewerApi (the export panel's too), so this one handler renders them all.
"""

from rest_framework import exceptions
from rest_framework.response import Response

from batches.errors import openai_exception_handler
from core.exceptions import error_body

_LOGIN_NEEDED = "Log in to the viewer with a staff account."


def viewer_exception_handler(exc, context):
    """DRF exception handler for the viewer's endpoints (ViewerApi).

    The same envelope as /v1, but a missing or expired session is told to log
    in (the API's message speaks of keys, which do nothing here).
    """
    if isinstance(exc, exceptions.NotAuthenticated):
        body = error_body(_LOGIN_NEEDED, type="invalid_request_error", code="not_authenticated")
        return Response(body, status=exc.status_code)
    return openai_exception_handler(exc, context)
