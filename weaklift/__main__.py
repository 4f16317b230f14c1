"""``python -m weaklift ...``: the CLI, also as launchers run it (``torchrun -m weaklift run ...``)."""

import sys

from weaklift.cli import main

sys.exit(main())
