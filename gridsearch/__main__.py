"""``python -m gridsearch``: the same as the ``gridsearch`` command."""

import sys

from gridsearch.cli import main

sys.exit(main())
