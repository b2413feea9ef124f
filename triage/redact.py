"""Defence in depth for secrets in logs: whatever logs a webhook URL, a shared secret or a
credential header, the record says `<redacted>` instead.

`deliver` already keeps URLs out of what it logs; this catches what it cannot control: urllib3's
request lines, an exception text that quotes a URL, an error page that echoes the request, a
header dump. The redaction runs in the log-record factory, so it covers every logger (a filter on
the "urllib3" logger would miss "urllib3.connectionpool") and every handler, including those
added after `install` (the Functions worker's, pytest's).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .settings import Settings

__all__ = ["CREDENTIAL_PARAMS", "REDACTED", "Redactor", "install", "redact_url", "uninstall"]

REDACTED = "<redacted>"
CREDENTIAL_PARAMS = ("sig", "code")  # Teams Workflows' signature, the Functions key
_MIN_SECRET_CHARS = 8  # shorter pieces of a URL are words, not secrets ("/api", "sp=1")
_MIN_TOKEN_CHARS = 16  # a lone query value or path segment must be this long to be taken
_MIN_SHARED_SECRET_CHARS = 4  # a shorter secret is still caught as ?secret=… by the pattern below

# Credentials wherever they appear, configured or not: header values, signature and key
# query parameters, storage connection-string keys, and anything shaped like a JWT.
_HEADERS = ("authorization", "aeg-sas-key", "aeg-sas-token", "x-functions-key")  # + proxy-authorization
_CONN_KEYS = ("accountkey", "sharedaccesskey", "sharedaccesssignature")
_SCHEMES = r"bearer|basic|sharedaccesssignature"
_VALUE = r"[^\s\"',;&}]+"
_JWT = r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"


class Redactor(logging.Filter):
    """Replaces known secrets and credential-shaped values in text and in log records.

    Usable on its own as a logging.Filter (it rewrites the record and lets it through);
    `install` runs it on every record instead.
    """

    def __init__(self, secrets: Iterable[str] = (), query_params: Iterable[str] = CREDENTIAL_PARAMS) -> None:
        super().__init__()
        # Longest first, each replaced everywhere before the next is looked for: a secret that
        # holds a shorter one is replaced whole, never cut short by it. Substring tests and
        # str.replace beat one alternation of every literal, and there is nothing to compile.
        self._literals = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._params = tuple(p for p in dict.fromkeys(query_params) if p)
        # The credential pattern costs microseconds per line; these plain words say when it can
        # match at all (substring tests are several times faster than any regex over the line).
        self._hints = (*_HEADERS, *_CONN_KEYS, *(f"{p.lower()}=" for p in self._params), "eyj")

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        """A Redactor for every secret in `settings`: webhook URLs and keys, shared secret, storage keys."""
        secrets: list[str] = []
        for destination in settings.destinations.values():
            secrets += _url_secrets(destination.url.get_secret_value())
            key = destination.secret  # a routing key, a signing key
            if key is not None and len(key) >= _MIN_SECRET_CHARS:
                value = key.get_secret_value()
                secrets += _variants(value)
                if " " in value:  # several signing keys (a rotation): each one alone too
                    for part in value.split():
                        secrets += _variants(part)
        if settings.shared_secret is not None:
            value = settings.shared_secret.get_secret_value()
            if len(value) >= _MIN_SHARED_SECRET_CHARS:
                secrets += _variants(value)
        if settings.silence_link_key is not None:
            secrets += _variants(settings.silence_link_key.get_secret_value())
        if settings.storage_connection is not None:
            secrets.append(settings.storage_connection.get_secret_value())
        return cls(secrets, (*CREDENTIAL_PARAMS, settings.secret_param))

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by REDACTED (a credential's name is kept)."""
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, REDACTED)
        lowered = text.lower()
        if any(hint in lowered for hint in self._hints):
            text = _credentials(self._params).sub(_replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message, traceback and stack in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: handleError would print the raw arguments
            record.msg, record.args = self.redact(str(record.msg)) + " (unformattable arguments)", ()
        else:
            clean = self.redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = self.redact(text)
            if clean != text:
                # Handlers format exc_info themselves; only the redacted text may reach them.
                record.exc_info, record.exc_text = None, clean
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


@functools.lru_cache(maxsize=16)
def _credentials(params: tuple[str, ...]) -> re.Pattern[str]:
    """Credentials in a line, the query parameters `params` among them. Compiled when a line may
    first hold one: most processes log none, and a cold start does not wait for it."""
    names = "|".join(map(re.escape, params))
    return re.compile(
        rf"(?P<keep>\b(?:{'|'.join(_HEADERS)})[\"']?\s*[:=]\s*[\"']?(?:(?:{_SCHEMES})\s+)?"
        rf"|[?&;](?:{names})="
        rf"|\b(?:{'|'.join(_CONN_KEYS)})=){_VALUE}|{_JWT}",
        re.IGNORECASE,
    )


def _replacement(match: re.Match[str]) -> str:
    return (match.group("keep") or "") + REDACTED


def _variants(text: str) -> list[str]:
    # As configured, as sent (percent-encoded) and as a server may echo it back (decoded).
    return [text, quote(text, safe="!#$%&'()*+,/:;=?@[]~"), unquote(text)]


def _url_secrets(url: str) -> list[str]:
    """The URL and each part of it that identifies the webhook: urllib3 logs path + query,
    an error page may echo only the path, a message may quote just the `sig` value."""
    parts = urlsplit(url)
    whole = [url, parts.path, parts.query, f"{parts.path}?{parts.query}" if parts.query else ""]
    # Single values and path segments count only when token-long: "triggers" is a word.
    tokens = [value for _, _, value in (p.partition("=") for p in parts.query.split("&"))]
    tokens += parts.path.split("/")  # Slack's token is the last path segment
    pieces = [p for p in whole if len(p) >= _MIN_SECRET_CHARS]
    pieces += [t for t in tokens if len(t) >= _MIN_TOKEN_CHARS]
    return [variant for piece in pieces for variant in _variants(piece)]


@functools.lru_cache(maxsize=64)
def _url_redactor(url: str) -> Redactor:
    return Redactor(_url_secrets(url))


def redact_url(text: str, url: str) -> str:
    """`text` without `url` or any part of it that identifies the webhook: for error bodies that
    echo the request line back ("Cannot POST /services/T…/B…/…")."""
    return _url_redactor(url).redact(text)


_lock = threading.Lock()
_active: Redactor | None = None
_previous_factory: Callable[..., logging.LogRecord] | None = None  # set while ours is in place


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = (_previous_factory or logging.LogRecord)(*args, **kwargs)
    redactor = _active
    if redactor is not None:
        redactor.filter(record)
    return record


def install(settings: Settings) -> Redactor:
    """Redact the secrets of `settings` in every log record from now on, and quiet urllib3's
    DEBUG request lines. Calling it again only replaces the secrets: the factory is wrapped,
    and urllib3 quieted, once (a level an operator sets later is theirs)."""
    global _active, _previous_factory  # noqa: PLW0603 - logging itself is process-wide
    redactor = Redactor.for_settings(settings)
    with _lock:
        first = _previous_factory is None
        if first:
            _previous_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_factory)
        _active = redactor
    urllib3_log = logging.getLogger("urllib3")
    if first and urllib3_log.level < logging.INFO:  # its DEBUG line: 'host:port "POST /path?query …"'
        urllib3_log.setLevel(logging.INFO)
    return redactor


def uninstall() -> None:
    """Stop redacting (tests); puts back the record factory that was there before `install`."""
    global _active, _previous_factory  # noqa: PLW0603
    with _lock:
        _active = None
        # If someone wrapped our factory since, it stays in their chain, passing records through.
        if _previous_factory is not None and logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_previous_factory)
            _previous_factory = None
