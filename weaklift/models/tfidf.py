"""A cheap non-neural weak member: TF-IDF n-grams + logistic regression (scikit-learn).

Mixing it into an ensemble gives the family diversity Cui et al. 2024 ask of weak supervisors.
It is saved without pickle: the vocabulary as JSON, idf and weights as safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from weaklift.store import save_arrays

TFIDF_MODEL = "tfidf"
_VECTORIZER = {"ngram_range": (1, 2), "min_df": 1, "sublinear_tf": True, "max_features": 50_000}


class TfidfClassifier:
    """scikit-learn style: ``fit`` returns self, learned state ends in ``_``, ``predict_proba`` → (n, K)."""

    def __init__(self, *, num_classes: int, C: float = 1.0, seed: int = 0):
        self.num_classes = num_classes
        self.C = C
        self.seed = seed

    def fit(self, texts: list[str], labels: np.ndarray) -> TfidfClassifier:
        self.vectorizer_ = TfidfVectorizer(**_VECTORIZER).fit(texts)
        features = self.vectorizer_.transform(texts)
        model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(
            features, labels
        )
        # Expand to all K classes even if the training sample missed one.
        self.coef_ = np.zeros((self.num_classes, features.shape[1]), dtype=np.float64)
        self.intercept_ = np.full(
            self.num_classes, -1e4 if len(model.classes_) < self.num_classes else 0.0
        )
        if len(model.classes_) == 2:  # sklearn stores one row for binary problems
            rows, intercepts = (
                np.vstack([-model.coef_[0], model.coef_[0]]) / 2,
                np.array([-1, 1]) * model.intercept_[0] / 2,
            )
        else:
            rows, intercepts = model.coef_, model.intercept_
        self.coef_[model.classes_] = rows
        self.intercept_[model.classes_] = intercepts
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        logits = self.vectorizer_.transform(texts) @ self.coef_.T + self.intercept_  # (n, K)
        logits = np.asarray(logits) - np.max(logits, axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)

    def save(self, folder: Path) -> None:
        vocabulary = {term: int(i) for term, i in sorted(self.vectorizer_.vocabulary_.items())}
        (folder / "vocabulary.json").write_text(json.dumps(vocabulary))
        save_arrays(
            folder,
            {"idf": self.vectorizer_.idf_, "coef": self.coef_, "intercept": self.intercept_},
            "weights",
        )

    @classmethod
    def load(cls, folder: Path, num_classes: int) -> TfidfClassifier:
        from safetensors.numpy import load_file

        arrays = load_file(str(folder / "weights.safetensors"))
        model = cls(num_classes=num_classes)
        model.vectorizer_ = TfidfVectorizer(**_VECTORIZER)
        model.vectorizer_.vocabulary_ = json.loads((folder / "vocabulary.json").read_text())
        model.vectorizer_.idf_ = arrays["idf"]
        model.coef_, model.intercept_ = arrays["coef"], arrays["intercept"]
        return model
