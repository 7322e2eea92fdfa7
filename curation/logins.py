"""Where a login attempt comes from, for django-axes' lockouts (AXES_CLIENT_IP_CALLABLE).

Outside the quickstart the documented deployment puts nginx on the same host in
front of gunicorn (deploy/nginx): every connection then comes from loopback,
and nginx overwrites X-Forwarded-For with the client's address, so that header
is the client. In the quickstart, or from any other peer, the header is
whatever the client chose to send: the connection's own address counts.
"""

from ipaddress import ip_address

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and not settings.QUICKSTART and _is_loopback(remote):
        # nginx sets one address; a proxy in front of it would append its own.
        return forwarded.split(",")[-1].strip()
    return remote


def _is_loopback(address: str) -> bool:
    try:
        return ip_address(address).is_loopback
    except ValueError:
        return False
