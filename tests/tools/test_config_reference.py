"""docs/configuration.md is generated from the config models and kept fresh; every setting
states what it does."""

from __future__ import annotations

from pydantic import BaseModel

from drape.services.runtime.config import DrapeConfig
from tools.config_reference import OUT, render


def _leaf_fields(model: type[BaseModel], path: str = "") -> list[tuple[str, object]]:
    fields = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields += _leaf_fields(annotation, f"{path}{name}.")
        else:
            fields.append((f"{path}{name}", field.description))
    return fields


def test_every_setting_has_a_description():
    missing = [name for name, description in _leaf_fields(DrapeConfig) if not description]
    assert missing == []


def test_the_reference_is_fresh():
    assert OUT.read_text() == render(), "run python tools/config_reference.py"


def test_the_reference_names_every_setting_and_its_variable():
    text = OUT.read_text()
    for name, _ in _leaf_fields(DrapeConfig):
        if ".server." in f".{name}":
            continue  # one table for every service's server section
        leaf = name.rpartition(".")[2]
        assert f"`{leaf}`" in text and f"DRAPE_{name.replace('.', '__').upper()}" in text, name
