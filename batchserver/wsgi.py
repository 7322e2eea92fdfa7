"""WSGI entry points, one per surface.

    gunicorn batchserver.wsgi:api      # port 4080, /v1
    gunicorn batchserver.wsgi:viewer   # port 8001, viewer and admin

Both run the same settings; the API resolves every request against its own
URLconf, so neither surface can reach the other's URLs.
"""

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import set_urlconf
from django.utils.log import log_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
django.setup(set_prefix=False)


class ApiWSGIHandler(WSGIHandler):
    def get_response(self, request):
        """BaseHandler.get_response with the API's URLconf from the start.

        Django sets ROOT_URLCONF (the viewer's) before the middleware and the
        request's own only when it resolves the view, so an error raised in
        the middleware (a bad Host header, a body too big) would be answered
        by the viewer's HTML error pages. Setting it first makes the API's
        JSON handlers (batchserver/urls/api.py) answer every error here.
        """
        request.urlconf = settings.API_URLCONF
        set_urlconf(settings.API_URLCONF)
        response = self._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        return response


viewer = application = WSGIHandler()
api = ApiWSGIHandler()
