"""The standard suite (Burns et al. 2023's NLP datasets that weaklift ships): task -> data folder.

``weaklift suite`` runs every task here whose folder exists under the data directory
(``../shared/data`` or ``$WEAKLIFT_DATA``), passing ``task.path=<data>/<folder>``.
"""

from __future__ import annotations

SUITE_TASKS: dict[str, str] = {
    "sciq": "sciq",
    "sst2": "sst2",
    "boolq": "boolq",
    "cosmos_qa": "cosmos_qa",
    "dream": "dream",
    "openbookqa": "openbookqa",
    "piqa": "piqa",
    "quail": "quail",
    "social_iqa": "social_iqa",
    "mc_taco": "mc_taco",
    "commonsense_qa": "commonsense_qa",
    "multirc": "multirc",
    "cola": "cola",
    "wic": "wic",
    "tweeteval_sentiment": "tweeteval",
    "ethics_justice": "ethics",
    "ethics_deontology": "ethics",
    "ethics_commonsense": "ethics",
    "ethics_virtue": "ethics",
}
