"""Error types. Each says what is wrong and what to fix; the HTTP adapter maps them to status codes."""

from __future__ import annotations

__all__ = [
    "BodyTooLarge",
    "ConfigurationError",
    "DeliveryDeferred",
    "DeliveryError",
    "InvalidEnvelope",
    "SlotYielded",
    "TriageError",
    "Unauthorized",
    "UnsupportedMediaType",
]


class TriageError(Exception):
    """Base of every error acs-triage raises on purpose."""

    status = 500


class InvalidEnvelope(TriageError):
    """The body is not JSON, or not an Event Grid / CloudEvents envelope we can read."""

    status = 400


class UnsupportedMediaType(TriageError):
    """The request declares a content type that cannot carry JSON events."""

    status = 415


class BodyTooLarge(TriageError):
    """The body is over the configured limit (Event Grid's own limit is 1 MB)."""

    status = 413


class Unauthorized(TriageError):
    """Missing or wrong shared secret, or an invalid callback token."""

    status = 401


class ConfigurationError(TriageError):
    """A setting is missing or malformed; the message names the setting."""


class DeliveryError(TriageError):
    """A webhook post failed. `retry` says whether trying again can help.

    The message never contains the webhook URL: it is the credential.
    """

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class DeliveryDeferred(DeliveryError):
    """The destination holds posts off (its Retry-After) for `retry_after` seconds, longer than a
    worker may wait: the message goes back to the outbox with that delay instead of a sleep."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry=True, retry_after=retry_after)
        self.delay = retry_after


class SlotYielded(DeliveryDeferred):
    """A digest, notice or report found its destination's send slots booked ahead (by first
    alerts, or by other messages): it goes back to the outbox for `retry_after` seconds instead
    of booking a slot a first alert would wait behind. Expected, not a failure."""
