"""`python -m tests.pgcheck URL`: exit 0 if that PostgreSQL server answers.

Used by `make test` to decide whether to run the suite on PostgreSQL too.
"""

import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg


def main(url: str) -> int:
    # The test database does not exist yet; the server's own database does.
    server = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    try:
        psycopg.connect(
            server.replace("postgres://", "postgresql://", 1), connect_timeout=3
        ).close()
    except psycopg.Error:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
