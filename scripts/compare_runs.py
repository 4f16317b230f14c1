"""Compare the collected numbers of two output folders (e.g. a sweep run locally and on Ray).

    python scripts/compare_runs.py /tmp/sweep-runs /tmp/sweep-runs-ray

Rows are matched by (weak, strong, seed, role, method), never by run folder names (those hash the
output_dir). Prints how many rows match exactly and the largest difference per metric; exit code 1
when any number differs.
"""

from __future__ import annotations

import sys

import numpy as np

from weaklift.collect import METRICS, load_runs, results_table

KEY = ["weak", "strong", "seed", "role", "method"]


def main(a: str, b: str) -> int:
    left = results_table(load_runs(a)).set_index(KEY)[list(METRICS)].sort_index()
    right = results_table(load_runs(b)).set_index(KEY)[list(METRICS)].sort_index()
    if not left.index.equals(right.index):
        print(f"different rows: {len(left)} in {a}, {len(right)} in {b}")
        return 1
    x, y = left.to_numpy(float), right.to_numpy(float)
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    print(f"{int(same.all(axis=1).sum())}/{len(left)} rows identical in every metric")
    for j, metric in enumerate(METRICS):
        diff = np.nanmax(np.abs(x[:, j] - y[:, j])) if not same[:, j].all() else 0.0
        print(f"  {metric:<22} max |difference| {diff:.3g}")
    return 0 if same.all() else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
