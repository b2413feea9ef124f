"""Request authentication beyond the Functions key: an optional shared secret in the query
string (Event Grid and Call Automation both keep query parameters of the subscription URL)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from .errors import Unauthorized
from .settings import Settings

__all__ = ["check_shared_secret"]


def check_shared_secret(settings: Settings, params: Mapping[str, str]) -> None:
    """Raise Unauthorized unless the configured secret is in the query string (constant-time compare)."""
    if settings.shared_secret is None:
        return
    given = params.get(settings.secret_param, "")
    expected = settings.shared_secret.get_secret_value()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(f"missing or wrong '{settings.secret_param}' query parameter")
