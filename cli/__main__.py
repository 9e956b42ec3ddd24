"""``python -m drape.cli``: the same as the ``drape`` console script."""

import sys

from drape.cli.main import main

sys.exit(main())
