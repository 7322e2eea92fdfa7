"""Uploads stream to a temporary file on disk and stop at MAX_UPLOAD_BYTES."""

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Write every uploaded file to disk; refuse one that grows past the limit.

    On overflow the partial file is deleted at once and the rest of the request
    body is read and discarded (StopUpload without a connection reset), so the
    client gets a clean error response instead of a broken pipe. The view sees
    `request.upload_too_large` and answers with 413.
    """

    def new_file(self, *args, **kwargs):
        self.request.upload_too_large = False
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.file.close()  # a NamedTemporaryFile: closing deletes it
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)
