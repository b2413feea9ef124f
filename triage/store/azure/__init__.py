"""The Store on Azure Storage, shared by every Function instance: Tables hold dedup keys,
burst groups and send slots; a Storage queue holds the outbox.

`AzureStore` is composed of one part per concern, each a module of this package:

- `_core`: names, limits and RowKeys, the SDK clients and their connection pool, the thread
  pool, units, entity-group transactions, health probes; the base class with the shared state;
- `claims`: dedup keys claimed, released and recovered, and the purge of expired ones;
- `groups`: burst groups (hits, alerts, the flush that takes due groups, restores) and hourly
  counters;
- `silences`: silence rules, what they silenced and their summaries;
- `outbox`: the outbox queue and its poison queue, sent marks, send slots and holds.

The store's contracts are those of `triage.store` (see `Store`); this package only keeps them
on Azure. The Azure SDK is imported in this package only: `open_store` imports it when it is
needed.
"""

from __future__ import annotations

from ._core import (
    StoreContention,
    row_key,
    storage_credential,
)
from ._core import _partition as _partition  # the dedup partition of a key (bench and tests)
from .groups import AzureGroups
from .outbox import MAX_QUEUE_MESSAGE_BYTES as MAX_QUEUE_MESSAGE_BYTES
from .outbox import AzureOutbox, OutboxMessageTooLarge, QueueLease
from .silences import AzureSilences

__all__ = [
    "AzureStore",
    "OutboxMessageTooLarge",
    "QueueLease",
    "StoreContention",
    "row_key",
    "storage_credential",
]


class AzureStore(AzureGroups, AzureSilences, AzureOutbox):
    """Store and outbox on Azure Tables and a Storage queue (AzureWebJobsStorage).

    Tables `<prefix>dedup` (event keys, partitioned by hash) and `<prefix>state` (groups and
    send slots); queue `queue_name` (JSON, base64, as the Functions host reads it) and
    `<queue_name>-poison`. Tables and queue are created on first use.
    """
