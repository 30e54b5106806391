"""WSGI entry point (gunicorn ``project.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

from entra_auth.http.wsgi import guard_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# A request Django cannot even build (a bogus charset, too many fields) is a 400, not a 500.
application = guard_wsgi_application(get_wsgi_application())
