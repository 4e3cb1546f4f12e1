"""``python -m ib_nice_funcs.cli``: the same as the ``ib-nice-funcs`` command."""

import sys

from . import main

sys.exit(main())
