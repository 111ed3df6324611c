"""The committed JSON Schema of ``card.json``, generated from the typed card.

``python -m contracts.schema`` rewrites ``contracts/card.schema.json``; a test fails when the
committed file differs from what the types generate (so the schema never drifts from the code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.card import CARD_ADAPTER, SCHEMA_VERSION

SCHEMA_PATH = Path(__file__).with_name("card.schema.json")


def card_schema() -> dict[str, Any]:
    schema = CARD_ADAPTER.json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://toitsu.dev/schemas/card-v{SCHEMA_VERSION}.json",
        "title": f"Toitsu model card, schema {SCHEMA_VERSION}",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(card_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
