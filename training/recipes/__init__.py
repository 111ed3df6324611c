"""Recipes: strict YAML files whose sections map onto (frozen) dataclasses (DESIGN §4).

See ``training.recipes.config`` for the format (overrides, ``base:`` inheritance, hashing).
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
