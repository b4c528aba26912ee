"""``python -m nas.cli``: the same as the ``nas`` command (used to spawn search workers)."""

import sys

from nas.cli import main

sys.exit(main())
