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

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchserver.settings")
django.setup(set_prefix=False)


class ApiWSGIHandler(WSGIHandler):
    def get_response(self, request):
        request.urlconf = settings.API_URLCONF
        return super().get_response(request)


viewer = application = WSGIHandler()
api = ApiWSGIHandler()
