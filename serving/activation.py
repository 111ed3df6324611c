"""Activating a model version for a modality, rolling back, purging (DESIGN §3 "Gallery"; issue 11).

The gateway owns one :class:`Activator`; ModelService's Activate / Rollback call it::

    report = gateway.activator.activate("speaker", "my-model", 2, policy="refuse",
                                        progress=lambda p: ..., cancelled=lambda: False)
    report = gateway.activator.rollback("speaker")
    gone = gateway.activator.purge("speaker")
    state = gateway.activator.state("speaker")     # active / previous generation, or None

**Activate**: the new version is loaded as a full modality over a new, empty *shadow* gallery
(``gen-NNNN``, see :mod:`serving.gallery.generations`); every identity's stored media is
re-embedded into it, then the enrollments and deletes that arrived meanwhile (change log), then —
with the active gallery's writes paused — the final delta; ``COMPLETE.json``; the ``ACTIVE``
file is replaced (the swap point on disk); the gateway's modality object is replaced (the swap
point in memory); the old gallery is *retired*: reads go on, so requests in flight finish on the
version they started with, and a write that was waiting fails with UNAVAILABLE ("retry"), never
acknowledged into the old generation. Every later request fetches the new modality.

**Policy** for identities that cannot be re-embedded (no stored media, media the new model
refuses): ``refuse`` (default) lists them in a FAILED_PRECONDITION (:class:`MissingMedia`) and
changes nothing; ``drop`` leaves them out of the new gallery; ``keep-old`` leaves them in the
old generation only, and a Verify of one on the new version is FAILED_PRECONDITION naming the old
binding. Either way the report lists them.

**Rollback** swaps back to the previous generation, still loaded in this process (after a
restart it is loaded first). Changes made since the swap are replayed into it with its own model
(deletes always; enrollments re-embedded from their media, under the same policy), so rollback
loses nothing acknowledged either, and the rolled-back generation becomes the previous one.
One previous generation is kept (until :meth:`Activator.purge`); a further activation discards
the one before it.

**Crash safety**: until ``ACTIVE`` is replaced the old generation is the active one and a restart
discards the shadow; after, the new one is. Every write is one SQLite transaction either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Protocol

from serving.activation_copy import (
    POLICIES,
    ActivationProgress,
    Copier,
    MissingMedia,
    Modality,
    Policy,
    low_priority,
    missing_message,
)
from serving.activation_report import ActivationReport, build_report
from serving.config import Config
from serving.errors import Cancelled, FailedPrecondition, InvalidInput, NotFound
from serving.gallery import ModelBinding
from serving.gallery import generations as gens
from serving.gallery import reembed as rx
from serving.gallery.generations import Generation, State
from serving.loader import MODALITIES, gallery_root, load_modality, stop_modality
from serving.metrics import Metrics
from serving.models.repository import ModelRepository

log = logging.getLogger("toitsu.activation")

__all__ = ["POLICIES", "ActivationProgress", "ActivationReport", "Activator", "Host", "MissingMedia", "Policy"]


class Host(Protocol):
    """What the activator needs of the gateway."""

    config: Config
    metrics: Metrics

    def modality(self, name: str) -> Modality: ...

    def swap_modality(self, name: str, new: Modality) -> Modality:
        """Install ``new`` as the served modality; returns the one it replaces."""
        ...


class Activator:
    def __init__(self, host: Host) -> None:
        self._host = host
        self._locks = {name: threading.Lock() for name in MODALITIES}
        self._previous: dict[str, Modality] = {}

    # --- queries ----------------------------------------------------------------------------

    def state(self, modality: str) -> State | None:
        """The persisted generations of ``modality`` (None: only the legacy gallery, never activated)."""
        return gens.read_state(self._root(_known(modality)))

    # --- activate ---------------------------------------------------------------------------

    def activate(
        self,
        modality: str,
        model: str,
        version: int,
        policy: Policy = "refuse",
        progress: Callable[[ActivationProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> ActivationReport:
        """Re-embed ``modality``'s gallery with ``model`` v``version`` and swap to it (module doc).

        Raises InvalidInput (unknown modality or policy, a model of another modality), NotFound
        (model or version), FailedPrecondition (already active, no calibration, an activation
        running, :class:`MissingMedia` under ``refuse``), Cancelled, Unavailable (not loaded).
        """
        name, notify, stop = _known(modality), progress or (lambda p: None), cancelled or (lambda: False)
        if policy not in POLICIES:
            raise InvalidInput(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        with self._exclusive(name):
            started = time.monotonic()
            current = self._host.modality(name)
            card = self._check_version(name, model, version, current)
            root = self._root(name)
            state = gens.recover(root) or State(self._legacy(current))
            skipped = dict.fromkeys(rx.without_media(current.gallery), "no stored media")
            if skipped and policy == "refuse":
                raise MissingMedia(missing_message(name, card_binding(card), skipped), skipped)
            folder = gens.new_folder(root)
            shadow = Generation(folder, model, version, card.embedding_dim or 0)
            gens.start_shadow(root, folder, {**asdict(shadow), "source": state.active.folder, "policy": policy})
            notify(ActivationProgress(name, "loading", message=f"loading {model} v{version}"))
            target: Modality | None = None
            try:
                target = load_modality(self._host.config, name, None, generation=shadow)
                copier = Copier(name, current, target, policy, notify, stop, traffic=self._host.metrics.live)
                since, rows = rx.position(current.gallery)
                since = low_priority(f"reembed-{name}", lambda: self._reembed(copier, rows, since))
                paused = self._switch(name, copier, since, state, shadow, target, root, kind="activate")
            except BaseException:
                if target is not None:
                    stop_modality(target)
                gens.discard(root, shadow)
                raise
            discarded = self._keep_previous(name, current, state)
            return self._report(name, "activate", copier, current, target, policy, started, paused, discarded)

    def _reembed(self, copier: Copier, rows: list[int], since: int) -> int:
        copier.rows(rows, "re-embedding")
        return copier.catch_up(since)

    # --- rollback and purge -------------------------------------------------------------------

    def rollback(
        self,
        modality: str,
        policy: Policy = "refuse",
        progress: Callable[[ActivationProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> ActivationReport:
        """Swap back to the previous generation, replaying into it what changed since the swap.

        FailedPrecondition when there is nothing to roll back to (or an activation is running)."""
        name, notify, stop = _known(modality), progress or (lambda p: None), cancelled or (lambda: False)
        with self._exclusive(name):
            started = time.monotonic()
            root = self._root(name)
            state = gens.recover(root)
            if state is None or state.previous is None:
                raise FailedPrecondition(f"the {name} gallery has no previous generation to roll back to")
            current, back = self._host.modality(name), state.previous
            target = self._previous.pop(name, None)
            if target is None:
                notify(ActivationProgress(name, "loading", message=f"loading {back.model} v{back.version}"))
                target = load_modality(self._host.config, name, None, generation=back)
            try:
                copier = Copier(name, current, target, policy, notify, stop, traffic=self._host.metrics.live)
                copier.audit_after = rx.first_audit_at(current.gallery, state.active.switched_at) - 1
                since = state.active.sequence_at_switch
                since = low_priority(f"rollback-{name}", lambda: copier.catch_up(since, passes=3))
                paused = self._switch(name, copier, since, State(state.active), back, target, root, kind="rollback")
            except BaseException:
                self._previous[name] = target  # still the previous generation, and still loaded
                raise
            self._previous[name] = current
            return self._report(name, "rollback", copier, current, target, policy, started, paused, "")

    def purge(self, modality: str) -> Generation:
        """Delete the previous generation (its gallery, its loaded model); returns what was purged."""
        name = _known(modality)
        with self._exclusive(name):
            root = self._root(name)
            state = gens.recover(root)
            if state is None or state.previous is None:
                raise FailedPrecondition(f"the {name} gallery has no previous generation to purge")
            gens.write_state(root, State(state.active))
            loaded = self._previous.pop(name, None)
            if loaded is not None:
                stop_modality(loaded)
            gens.discard(root, state.previous)
            return state.previous

    def close(self) -> None:
        """Stop the previous modalities kept loaded for rollback (gateway shutdown)."""
        for name in list(self._previous):
            stop_modality(self._previous.pop(name))

    # --- the swap -------------------------------------------------------------------------------

    def _switch(
        self,
        name: str,
        copier: Copier,
        since: int,
        state: State,
        generation: Generation,
        target: Modality,
        root: Path,
        *,
        kind: str,
    ) -> float:
        """Final delta with writes paused, COMPLETE, ACTIVE, in-memory swap, retire; the pause (s)."""
        source = copier.source
        with source.gallery.paused_writes():
            paused = time.monotonic()
            copier.progress(ActivationProgress(name, "final-delta", message="writes paused"))
            copier.final_delta(since)
            if copier.cancelled():
                raise Cancelled(f"the {name} {kind} was cancelled; the active gallery is unchanged")
            copier.progress(ActivationProgress(name, "committing"))
            gens.mark_complete(generation.path(root), {"kind": kind, "at": time.time(), **asdict(copier.tally)})
            now = time.time()
            active = replace(generation, sequence_at_switch=target.gallery.sequence, switched_at=now)
            gens.write_state(root, State(active, state.active))
            copier.progress(ActivationProgress(name, "switched", message=f"{active.model} v{active.version} active"))
            target.gallery.reinstate()
            self._host.swap_modality(name, target)
            source.gallery.retire(
                f"the {name} gallery switched from {source.binding} to {target.binding} while this write was "
                "waiting; nothing was written: retry"
            )
            return time.monotonic() - paused

    def _keep_previous(self, name: str, current: Modality, state: State) -> str:
        """``current`` becomes the previous generation; the one before it (if any) is discarded."""
        older = self._previous.pop(name, None)
        if older is not None:
            stop_modality(older)
        if current.binding == current.gallery.binding:
            self._previous[name] = current
        else:  # its model never matched its gallery: a rollback loads the gallery's own model instead
            stop_modality(current)
        if state.previous is not None:
            gens.discard(self._root(name), state.previous)
            return state.previous.folder
        return ""

    # --- helpers --------------------------------------------------------------------------------

    def _report(self, name: str, kind: str, copier: Copier, old: Modality, new: Modality, *args) -> ActivationReport:
        copier.progress(ActivationProgress(name, "report"))
        report = build_report(name, kind, copier.tally, old, new, self._root(name), *args)
        copier.progress(ActivationProgress(name, "done", message=f"{new.binding} active"))
        return report

    def _check_version(self, name: str, model: str, version: int, current: Modality):
        repo = ModelRepository(self._host.config.models_dir)
        found = repo.get(model, version)  # NotFound names what exists
        if found.card.version != version:
            raise NotFound(f"model {model!r} has no version {version} (have {repo.versions(model)})")
        if found.card.modality != name:
            raise InvalidInput(f"{model} v{version} is a {found.card.modality} model, not a {name} model")
        if card_binding(found.card) == current.binding == current.gallery.binding:
            raise FailedPrecondition(f"{model} v{version} is already the active {name} model")
        if found.card.calibration_section is None or not found.card.embedding_dim:
            raise FailedPrecondition(f"{model} v{version} has no calibration; a server never guesses a threshold")
        return found.card

    def _legacy(self, current: Modality) -> Generation:
        """The legacy folder as a generation: bound to what its templates come from (which a gateway
        whose configured model changed may not be serving)."""
        bound = current.gallery.binding
        return Generation(gens.LEGACY, bound.name, bound.version, current.gallery.dim)

    def _root(self, name: str) -> Path:
        return gallery_root(self._host.config, name)

    def _exclusive(self, name: str):
        lock = self._locks[name]
        if not lock.acquire(blocking=False):
            raise FailedPrecondition(f"an activation, rollback or purge of the {name} gallery is already running")
        return _Held(lock)


class _Held:
    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def card_binding(card) -> ModelBinding:
    return ModelBinding(card.name, card.version)


def _known(modality: str) -> str:
    if modality not in MODALITIES:
        raise InvalidInput(f"unknown modality {modality!r} (known: {', '.join(MODALITIES)})")
    return modality
