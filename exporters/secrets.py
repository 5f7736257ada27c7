"""Refusing to write anything that looks like a credential into an export or a bundle."""

from __future__ import annotations

import re
from collections.abc import Iterable

SECRET_KEY_WORDS = (
    "secret",
    "password",
    "passwd",
    "token",
    "api_key",
    "apikey",
    "key_id",
    "private",
)
SECRET_VALUE_PATTERNS = (
    re.compile(r"\b(?:PK|AK|CK)[A-Z0-9]{16,}\b"),  # Alpaca key ids
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access keys
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\b(?:secret|password|token)\s*[=:]\s*\S{8,}"),
    re.compile(r"(?i)AccountKey=[A-Za-z0-9+/=]{20,}"),  # Azure storage connection strings
)
# In code, `token = next(tokens)` is ordinary: source is checked for key shapes only.
SOURCE_PATTERNS = tuple(p for i, p in enumerate(SECRET_VALUE_PATTERNS) if i != 3)


def secret_findings(items: Iterable[tuple[str, str]]) -> list[str]:
    """(where, text) pairs -> descriptions of what looks secret (never the value itself)."""
    found = []
    for where, text in items:
        lowered = where.lower()
        if any(word in lowered for word in SECRET_KEY_WORDS):
            found.append(f"{where}: its name says it is a credential")
            continue
        for pattern in SECRET_VALUE_PATTERNS:
            if pattern.search(str(text)):
                found.append(f"{where}: the value looks like a credential")
                break
    return found


def source_findings(name: str, text: str) -> list[str]:
    """Lines of module `name` holding something shaped like a key (never the value itself)."""
    return [
        f"{name}, line {number}: it looks like a credential"
        for number, line in enumerate(text.splitlines(), 1)
        if any(pattern.search(line) for pattern in SOURCE_PATTERNS)
    ]
