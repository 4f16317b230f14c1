"""weaklift: weak-to-strong generalization experiments (Burns et al. 2023; Cui et al. 2024)."""

__version__ = "0.1.0"
