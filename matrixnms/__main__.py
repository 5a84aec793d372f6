"""``python -m matrixnms``: the ``matrixnms`` command (``matrixnms.cli``)."""

import sys

from .cli import main

sys.exit(main())
