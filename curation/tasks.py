"""django-q2 entry points for curation."""

from curation.retention import purge_expired as purge


def purge_expired() -> None:
    purge()
