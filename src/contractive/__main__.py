"""``python -m contractive`` runs the ``contractive`` command."""

import sys

from .cli import main

sys.exit(main())
