"""``python -m smsbridge.cli``: the ``smsbridge`` command."""

import sys

from . import main

sys.exit(main())
