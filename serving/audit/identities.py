"""Which identity ids a request or reply names, read from the messages by field name.

One rule for every service, so no servicer has to report what its messages already say:

- a string field named in :data:`ID_FIELDS` (``speaker_id``, ``person_id``, ``label``, ``best_id``);
- the ``id`` of every ``Candidate`` / ``IdentityInfo`` in a field (Identify's candidates, a List
  page, Classify's classes);
- the same, one message down, in a singular message field that holds any (EnrollTracks'
  ``result.person_id``).

The plan for each message type is worked out once from its descriptor; reading it then costs a
few attribute reads. Track ids, job ids and model names are not identities and are not read; no
bytes, floats or media are ever looked at.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

ID_FIELDS = frozenset({"speaker_id", "person_id", "label", "best_id"})
ID_HOLDERS = frozenset({"toitsu.v1.Candidate", "toitsu.v1.IdentityInfo"})  # messages whose `id` is an identity


@dataclass(frozen=True)
class _Plan:
    scalars: tuple[str, ...]  # string fields holding one id
    holders: tuple[tuple[str, bool], ...]  # (field, repeated) of Candidate / IdentityInfo messages
    nested: tuple[tuple[str, _Plan], ...]  # singular message fields with ids inside


_plans: dict[str, _Plan] = {}
_lock = threading.Lock()


def _plan(descriptor: Any, depth: int = 0) -> _Plan:
    scalars, holders, nested = [], [], []
    for field in descriptor.fields:
        repeated = field.is_repeated
        sub = field.message_type
        if field.type == FieldDescriptor.TYPE_STRING and not repeated and field.name in ID_FIELDS:
            scalars.append(field.name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and sub is not None:
            if sub.full_name in ID_HOLDERS:
                holders.append((field.name, repeated))
            elif not repeated and depth == 0 and not sub.GetOptions().map_entry:
                inner = _plan(sub, depth + 1)
                if inner.scalars or inner.holders:
                    nested.append((field.name, inner))
    return _Plan(tuple(scalars), tuple(holders), tuple(nested))


def _plan_for(message: Message) -> _Plan:
    name = message.DESCRIPTOR.full_name
    plan = _plans.get(name)
    if plan is None:
        with _lock:
            plan = _plans[name] = _plan(message.DESCRIPTOR)
    return plan


def _read(message: Message, plan: _Plan) -> Iterator[str]:
    for name in plan.scalars:
        yield getattr(message, name)
    for name, repeated in plan.holders:
        if repeated:
            yield from (item.id for item in getattr(message, name))
        elif message.HasField(name):
            yield getattr(message, name).id
    for name, inner in plan.nested:
        if message.HasField(name):
            yield from _read(getattr(message, name), inner)


def identities(message: object) -> list[str]:
    """The identity ids ``message`` names (empty ones left out); [] for anything not a message."""
    if not isinstance(message, Message):
        return []
    return [i for i in _read(message, _plan_for(message)) if i]
