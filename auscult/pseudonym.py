"""Pseudonymous participant ids: a keyed hash (HMAC-SHA256) of the source's name and its participant id.

The ingest stage and the serving layer both name participants this way, through these functions: serving
stores a request's ``participant`` tag as the id ingest would give it, so the raw tag never reaches the store.
Standard library only: the serving image imports it without pandas.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# The key that pseudonymises participant ids: a Secret on a cluster, a key file in a local workspace.
PSEUDONYM_KEY_ENV = "AUSCULT_PSEUDONYM_KEY"
PSEUDONYM_SECRET = "auscult-pseudonym-key"  # the Secret whose "key" a cluster's tasks get it from
TELEMETRY = "telemetry"  # the source name of what serving recorded
_PSEUDONYM = re.compile(r"[0-9a-f]{24}")


def pseudonymise(participant: str, key: bytes) -> str:
    return hmac.new(key, participant.encode(), hashlib.sha256).hexdigest()[:24]


def participant_id(source: str, participant: str, key: bytes) -> str:
    """The stored id of the participant that source ``source`` calls ``participant``."""
    return pseudonymise(f"{source}:{participant}", key)


def telemetry_participant(tag: str, key: bytes) -> str:
    """The stored id of a request's ``participant`` tag: what ingest gives the telemetry source's participant."""
    return participant_id(TELEMETRY, tag, key)


def is_pseudonym(value: object) -> bool:
    """Whether ``value`` has the shape of an id these functions return."""
    return isinstance(value, str) and _PSEUDONYM.fullmatch(value) is not None
