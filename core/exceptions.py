"""The one error type services raise, and OpenAI's error object.

Services know what went wrong and which HTTP status says it best; they do not
know which surface (the /v1 API, the viewer's JSON, the admin, a command) will
tell the user. Each app subclasses ApplicationError; each surface renders it in
one handler: batches.errors for /v1, curation.errors for the viewer's JSON,
and commands turn it into a CommandError. Modelled on the HackSoft Django
Styleguide example's core/exceptions.py.
"""

from core.text import QUOTE_MAX_CHARS, quoted


class ApplicationError(Exception):
    """A rule a request broke: a message for the user, the offending `param`,
    a stable `code`, and the HTTP `status` a web surface answers with."""

    status = 400
    code: str | None = "invalid_value"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def as_body(self) -> dict:
        """The error as OpenAI's error object."""
        return error_body(
            self.message, type=error_type(self.status), param=self.param, code=self.code
        )


class NotFound(ApplicationError):
    """No such object for this caller (a foreign object is not found either)."""

    status = 404
    code = "not_found"

    def __init__(self, object_name: str, object_id: str, *, param: str | None = "id"):
        # The id is the client's, of any length: quote its start only.
        shown = object_id if len(object_id) <= QUOTE_MAX_CHARS else quoted(object_id)
        super().__init__(f"No such {object_name}: {shown}", param=param)


class Conflict(ApplicationError):
    """The object is not in a state that allows this."""

    status = 409


def error_type(status: int) -> str:
    """OpenAI's `type` for an HTTP status."""
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict:
    """OpenAI's error object: the body of every /v1 error response, and of a
    failed request's response in a batch's error file."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
