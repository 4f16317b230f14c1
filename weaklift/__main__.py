"""``python -m weaklift ...``: the CLI, also as launchers run it (``torchrun -m weaklift run ...``)."""

import os
import sys

if os.environ.get("RANK", "0") != "0":  # one set of progress bars: the main process's
    os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads it when imported, so set it first

from weaklift.cli import main  # noqa: E402

sys.exit(main())
