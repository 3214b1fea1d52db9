"""``python -m uipbench.dft``: the command line of :mod:`uipbench.dft.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
