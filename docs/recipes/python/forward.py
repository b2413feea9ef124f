"""Forward Call Automation callbacks to acs-triage without ever holding up call control.

Copy this file next to your callback handler and call `forward(body, authorization)` with each
callback's raw body and its `Authorization` header (the token ACS signed, so acs-triage verifies
it as if ACS had sent the callback). It returns at once: the post runs on a background thread
with a short timeout, and a down, slow or refusing acs-triage costs your handler nothing.

Settings (environment):
  ACS_TRIAGE_FORWARD_URL              https://<app>.azurewebsites.net/api/callbacks?code=<function key>
                                      (a secret: it holds the key; it is never logged)
  ACS_TRIAGE_FORWARD_TIMEOUT_SECONDS  how long one forward may take, default 2
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

__all__ = ["forward"]

log = logging.getLogger("acs_triage_forward")

_URL_SETTING = "ACS_TRIAGE_FORWARD_URL"
_url = os.environ.get(_URL_SETTING, "")
if not _url.startswith(("https://", "http://")):
    # Checked when the handler starts, not per call: a forward that can never work is an error.
    raise RuntimeError(
        f"{_URL_SETTING} must be acs-triage's callback URL, "
        "https://<app>.azurewebsites.net/api/callbacks?code=<function key>"
    )
_timeout = float(os.environ.get("ACS_TRIAGE_FORWARD_TIMEOUT_SECONDS", "2"))
# Forwards running or waiting. When acs-triage hangs, each one holds a slot for the timeout;
# past this many, new ones are dropped rather than piling up in memory.
_MAX_PENDING = 64
_slots = threading.BoundedSemaphore(_MAX_PENDING)
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="acs-triage-forward")


def forward(body: bytes, authorization: str | None) -> None:
    """Hand one callback body to acs-triage in the background; returns at once, never raises."""
    if not _slots.acquire(blocking=False):
        log.warning("acs-triage forward dropped: %d forwards already pending", _MAX_PENDING)
        return
    try:
        _pool.submit(_post, body, authorization)
    except RuntimeError:  # the pool is shut down: the process is exiting
        _slots.release()


def _post(body: bytes, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(_url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=_timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as err:
        # The status says enough (401: token refused, 4xx: bad body); the URL holds the key.
        log.warning("acs-triage refused a forwarded callback: HTTP %d", err.code)
    except (OSError, ValueError) as err:
        log.warning("acs-triage forward failed: %s", type(err).__name__)
    finally:
        _slots.release()
