"""Uploads stream to a temporary file on disk and stop at MAX_UPLOAD_BYTES.

Three bounds hold whatever the client sends: the whole request body
(`upload_request_limit()`, checked against Content-Length before a byte is
read), each file (MAX_UPLOAD_BYTES, while it streams) and the number of files
(DATA_UPLOAD_MAX_NUMBER_FILES = 1 in the settings: a second file part is a 400
`too_many_files`, rendered by batches.errors).
"""

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

# Room in an upload request beside the file: the other form fields (purpose,
# expires_after) and the multipart boundaries and part headers, a few hundred
# bytes in practice.
UPLOAD_ENVELOPE_BYTES = 1024 * 1024


def upload_request_limit() -> int:
    """The largest multipart request body accepted, in bytes."""
    return settings.MAX_UPLOAD_BYTES + UPLOAD_ENVELOPE_BYTES


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Write every uploaded file to disk; refuse one that grows past the limit.

    A request whose Content-Length is over upload_request_limit() is not
    parsed at all: nothing is read or written, the view answers 413 and the
    server closes the connection after the answer (reading a body we refuse,
    however large the client says it is, would let one request hold a thread
    for as long as it likes).

    A file that grows past MAX_UPLOAD_BYTES is deleted at once and the rest of
    the request body, then bounded by the check above, is read and discarded
    (StopUpload without a connection reset), so the client gets a clean error
    response instead of a broken pipe.

    Either way the view sees `request.upload_too_large` and answers 413
    `file_too_large`.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.request.upload_too_large = False
        if content_length > upload_request_limit():
            self.request.upload_too_large = True
            # "Handled": Django's parser stops here with no fields and no files.
            return QueryDict(encoding=encoding), MultiValueDict()
        return super().handle_raw_input(input_data, META, content_length, boundary, encoding)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.file.close()  # a NamedTemporaryFile: closing deletes it
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
