"""Recipes: strict YAML files whose sections map onto (frozen) dataclasses (DESIGN §4).

See ``training.recipes.config`` for the format (overrides, ``base:`` inheritance, hashing) and
``training.recipes.kinds`` for ``KINDS``, which maps a recipe's ``kind`` onto its schema and its
train / eval entry points (imported from there, not here, since it imports every kind's module).
"""

from training.recipes.config import (
    RecipeError,
    apply_overrides,
    build_recipe,
    load_recipe,
    read_recipe_yaml,
    recipe_hash,
    resume_hash,
    run_identity,
    to_plain,
    to_yaml,
)

__all__ = [
    "RecipeError",
    "apply_overrides",
    "build_recipe",
    "load_recipe",
    "read_recipe_yaml",
    "recipe_hash",
    "resume_hash",
    "run_identity",
    "to_plain",
    "to_yaml",
]
