"""Request body parsing for the DRF endpoints (the /v1 API and the viewer's JSON).

DRF's JSONParser uses the standard library, which raises RecursionError (a
500) on a body nested some thousands of levels deep. This parser reads with
orjson, which stops at 1,024 levels with an ordinary decode error, and then
refuses anything nested deeper than batches.jsonl.MAX_JSON_DEPTH, the same
bound an input line has: every value a view receives can be walked, hashed
and written back (orjson writes at most 254 levels) without surprises.
"""

import codecs

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from batches.jsonl import MAX_JSON_DEPTH, deeper_than


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        if _codec_name(encoding) != "utf-8":
            try:
                raw = raw.decode(encoding).encode()
            except (UnicodeError, LookupError):
                raise ParseError(f"The request body is not valid {encoding}.") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ParseError(f"The request body is not valid JSON: {error}.") from None
        # Counting brackets first rules out almost every body cheaply.
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and deeper_than(data, MAX_JSON_DEPTH):
            raise ParseError(f"The request body nests JSON more than {MAX_JSON_DEPTH} levels deep.")
        return data


def _codec_name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return encoding
