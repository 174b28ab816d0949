"""``python -m contractive`` runs the ``contractive`` command.

Importing this module (as the doctest collection does) runs nothing.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
