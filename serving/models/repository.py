"""Scanning ``models/<name>/<version>/card.json`` (DESIGN §2) and choosing versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts.card import AnyCard, CardError, load_card
from serving.errors import NotFound


@dataclass(frozen=True)
class ModelVersion:
    card: AnyCard
    directory: Path

    @property
    def model_path(self) -> Path:
        return self.directory / self.card.file


class ModelRepository:
    """Read-only view of a model repository folder. Staging folders (``.staging-*``) are ignored."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[int]:
        model_dir = self.root / name
        if not model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and (p / "card.json").is_file())

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version (the newest when ``version`` is None); NotFound names what exists."""
        available = self.versions(name)
        if not available:
            raise NotFound(
                f"model {name!r} is not in the model repository {self.root} "
                f"(have: {', '.join(self.names()) or 'none'}); "
                "run `make models` to build the default pack"
            )
        chosen = available[-1] if version is None else version
        if chosen not in available:
            raise NotFound(f"model {name!r} has no version {chosen} (have: {', '.join(map(str, available))})")
        directory = self.root / name / str(chosen)
        card = load_card(directory)
        if card.name != name or card.version != chosen:
            raise CardError(f"{directory}/card.json says {card.name} v{card.version}")
        if not (directory / card.file).is_file():
            raise CardError(f"{directory} has a card but no {card.file}")
        return ModelVersion(card, directory)
