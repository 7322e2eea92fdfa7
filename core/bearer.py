"""Bearer secrets: API keys (/v1) and reviewer tokens (the viewer's curation API).

Both are 256 random bits, so a fast hash is enough to store them: there is
nothing to brute-force, and a lookup by hash stays an index probe.
"""

import hashlib
import secrets


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def masked(raw: str) -> str:
    """Enough of a presented secret to recognise it in an error, never all of it."""
    return f"{raw[:6]}…{raw[-4:]}" if len(raw) > 12 else "***"
