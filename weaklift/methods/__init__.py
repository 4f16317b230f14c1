"""Weak-to-strong methods: one class per file, all listed in ``METHODS`` (no import-time magic)."""

from __future__ import annotations

from pydantic import ValidationError

from weaklift.methods.base import Method, MethodOptions, soft_cross_entropy
from weaklift.methods.bayes import Bayes
from weaklift.methods.dpo import DPO, IPO, ConservativeDPO, PreferenceLoss
from weaklift.methods.hard import Hard
from weaklift.methods.joint import Joint
from weaklift.methods.logconf import Logconf
from weaklift.methods.multi_naive import MultiNaive
from weaklift.methods.product import Product
from weaklift.methods.xent import Xent

METHODS: dict[str, type] = {
    "xent": Xent,
    "hard": Hard,
    "logconf": Logconf,
    "product": Product,
    "multi_naive": MultiNaive,
    "joint": Joint,
    "bayes": Bayes,
}

# Losses on (chosen, rejected) pairs for preference optimisation: a protocol of their own
# (``weaklift.methods.dpo.PreferenceLoss``), configured under ``preference.losses``.
PREFERENCE_LOSSES: dict[str, type] = {
    "dpo": DPO,
    "cdpo": ConservativeDPO,
    "ipo": IPO,
}


def validate_method_options(
    spec, where: str = "methods", registry: dict[str, type] = METHODS
) -> MethodOptions:
    """Check a MethodSpec's options against its method's Options class; ValueError names the field."""
    method_cls = registry[spec.name]
    try:
        return method_cls.Options(**spec.options)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}.{field}: {first['msg']} (method {spec.name})") from None


def build_method(spec) -> Method:
    return METHODS[spec.name](validate_method_options(spec))


def method_params(spec) -> dict:
    """The cache-key view of a method: name, versions (its own and of the shared code it calls)
    and every option with defaults filled in. ``None`` is ground-truth training (xent on one-hot
    labels: the weak supervisor and the ceiling)."""
    if spec is None:
        return {"name": "gt_xent", "version": Xent.version, "shared": Xent.shared_versions}
    method_cls = METHODS[spec.name]
    return {
        "name": spec.name,
        "version": method_cls.version,
        "shared": dict(method_cls.shared_versions),
        "options": validate_method_options(spec).model_dump(),
    }


def build_preference_loss(spec) -> PreferenceLoss:
    options = validate_method_options(spec, "preference.losses", PREFERENCE_LOSSES)
    return PREFERENCE_LOSSES[spec.name](options)


def preference_loss_params(spec) -> dict:
    """The cache-key view of a preference loss: name, version and every option with defaults."""
    options = validate_method_options(spec, "preference.losses", PREFERENCE_LOSSES)
    version = PREFERENCE_LOSSES[spec.name].version
    return {"name": spec.name, "version": version, "options": options.model_dump()}


__all__ = [
    "METHODS",
    "PREFERENCE_LOSSES",
    "build_preference_loss",
    "preference_loss_params",
    "Method",
    "Xent",
    "MethodOptions",
    "build_method",
    "method_params",
    "soft_cross_entropy",
]
