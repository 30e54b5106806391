"""``python -m bench``: run every benchmark, print the table, exit 1 when a target is missed."""

import sys

from bench.run import main

sys.exit(main())
