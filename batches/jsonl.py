"""Reading JSONL and checking the JSON values it holds.

Shared by ingest (a batch's input file) and importing (output files made
elsewhere): lines are read in bounded slices and never held whole, and the
checks walk values without recursion limits of their own.
"""

from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

UTF8_BOM = b"\xef\xbb\xbf"
# Far beyond any chat request, and inside what orjson writes back (254 levels;
# it reads 1024) and what the recursive NUL checks below can walk.
MAX_JSON_DEPTH = 100
# A file's problems are reported line by line up to this many; the rest are counted.
MAX_REPORTED_LINES = 100


def iter_lines(handle: IO[bytes], max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) for each line; None for a line over the limit.

    The limit counts the line's content, not its LF or CRLF ending. An
    over-long line is skipped in bounded reads, never held in memory.
    """
    number = 0
    while line := handle.readline(max_line_bytes + 2):
        number += 1
        if len(line.removesuffix(b"\n").removesuffix(b"\r")) > max_line_bytes:
            while line and not line.endswith(b"\n"):
                line = handle.readline(max_line_bytes + 2)
            yield number, None
        else:
            yield number, line


def without_bom(raw: bytes) -> bytes:
    """A file's first line without the UTF-8 byte order mark some editors write."""
    return raw[len(UTF8_BOM) :] if raw.startswith(UTF8_BOM) else raw


def loads_or_none(raw: bytes | None):
    """The line's JSON value, or None for a blank or unparsable line."""
    if not raw or raw.isspace():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def deeper_than(value, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def contains_nul(value) -> bool:
    """Whether a string anywhere in the value holds NUL, which PostgreSQL cannot store."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def without_nul(value):
    """The value with NUL characters replaced by U+FFFD.

    Models do emit NUL now and then; PostgreSQL refuses it in JSON (and in
    text), and one such answer must not fail the rest of its chunk.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value
