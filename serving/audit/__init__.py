"""The gateway's audit trail: who called which RPC, on which identities, with what result (issue 16).

Two audit records exist, and they answer different questions:

- **This trail** (``var/audit/audit.sqlite``, :mod:`serving.audit.log`): one row per RPC of the
  biometric and admin services — reads included (Embed, Verify, Identify, List, …) — with the
  token's subject, the full method, the identity ids touched, the gRPC result code, the time, the
  duration and the peer. Refused calls (UNAUTHENTICATED, PERMISSION_DENIED) are rows too. It is
  written by two interceptors (:mod:`serving.audit.trail`), queried by ``AuditService.Query`` /
  ``toitsu audit`` (admin), and pruned after ``audit.retention_days``. Ids only: never templates,
  embeddings, media or request payloads.
- **A gallery's own ``audit`` table** (``serving.gallery.store``): that gallery's change history
  (create, enroll, delete, re-embed, rebind), kept inside the gallery store, so it travels with
  the gallery through backups, restores and activations. Its ``actor`` is the client address.
"""

from serving.audit.log import AuditLog, Event, Query
from serving.audit.trail import touched

__all__ = ["AuditLog", "Event", "Query", "touched"]
