"""Client values quoted in messages, cut to a short prefix.

Error messages are stored (a failed batch's `errors`, an import's skip
reasons) and sent back in every response that shows them, so a value a client
chose (a 4 MiB `body.model`, a custom_id, an unknown id) is quoted by its
first characters only: a message stays a line long whatever the input.
"""

import reprlib

# Enough to recognise a value; a message with a few of these stays under ~300 characters.
QUOTE_MAX_CHARS = 64
# Messages whose wording is not ours (a library's validation message that echoes
# the input) are cut as a whole at this length.
MESSAGE_MAX_CHARS = 500

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = QUOTE_MAX_CHARS
_repr.maxlevel = 2


def quoted(value: object, limit: int = QUOTE_MAX_CHARS) -> str:
    """`value` as repr() writes it, cut after `limit` characters of a string.

    A cut string says how long it was: `'xxxx…' (4,194,304 characters)`.
    Other values (lists, dicts) are abbreviated by reprlib.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        # Slice before repr(): repr of the whole value would copy all of it.
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    return _repr.repr(value)


def clipped(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters in all)"
