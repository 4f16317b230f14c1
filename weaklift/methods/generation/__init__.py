"""Generation methods: one class per file, all listed in ``GEN_METHODS`` (separate from the
classification ``METHODS``; a config's task kind decides which registry its methods come from)."""

from __future__ import annotations

from pydantic import ValidationError

from weaklift.methods.generation.base import (
    GenMethod,
    TokenTargets,
    soft_token_targets,
    token_shares,
)
from weaklift.methods.generation.bayes import GenBayes
from weaklift.methods.generation.joint import GenJoint
from weaklift.methods.generation.logconf import GenLogconf
from weaklift.methods.generation.multi_naive import GenMultiNaive
from weaklift.methods.generation.sft import Sft
from weaklift.methods.generation.soft import Soft

GEN_METHODS: dict[str, type] = {
    "sft": Sft,
    "soft": Soft,
    "bayes": GenBayes,
    "logconf": GenLogconf,
    "multi_naive": GenMultiNaive,
    "joint": GenJoint,
}


def validate_gen_method_options(spec, where: str = "methods"):
    """Check a MethodSpec's options against its generation method's Options; ValueError names it."""
    try:
        return GEN_METHODS[spec.name].Options(**spec.options)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}.{field}: {first['msg']} (method {spec.name})") from None


def build_gen_method(spec) -> GenMethod:
    return GEN_METHODS[spec.name](validate_gen_method_options(spec))


def gen_method_params(spec) -> dict:
    """The cache-key view of a generation method: its name, its version (a bump retrains exactly
    the students that use it) and every option, defaults filled."""
    return {
        "name": spec.name,
        "version": GEN_METHODS[spec.name].version,
        "options": validate_gen_method_options(spec).model_dump(),
    }


__all__ = [
    "GEN_METHODS",
    "GenMethod",
    "TokenTargets",
    "build_gen_method",
    "gen_method_params",
    "soft_token_targets",
    "token_shares",
]
