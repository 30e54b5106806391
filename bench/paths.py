"""URL paths of the three copies of the payments list (``bench.urls``), importable before
Django starts."""

PROTECTED_PATH = "/api/payments/"
OPEN_PATH = "/api/bench/open/payments/"
UNTHROTTLED_PATH = "/api/bench/unthrottled/payments/"
