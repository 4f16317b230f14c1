"""What every report figure is made of: the Figure record, its PNG bytes, and tick labels."""

from __future__ import annotations

import io
import re
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    id: str
    title: str
    caption: str
    png: bytes


def png(fig) -> bytes:
    """The matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def tick(label: str, width: int = 28) -> str:
    """A model label as a tick label: each folder by its last name, wrapped (whole paths made the
    axes collapse)."""
    return textwrap.fill(re.sub(r"(?:[^\s/]*/)+([^\s/]+)", r"\1", label), width)
