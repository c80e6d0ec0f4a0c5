"""Lead codes a child can keep and quote later: short, random, no look-alike characters."""

from __future__ import annotations

import re
import secrets

# No 0/O, 1/I/L, U/V: a child copying the code by hand should not be able to misread it.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
LENGTH = 6
PREFIX = "QT-"
CODE_RE = re.compile(rf"^{PREFIX}[{ALPHABET}]{{{LENGTH}}}$")


def new_lead_code() -> str:
    """A fresh code such as 'QT-7K3M9P' (29**6 ≈ 6e8 codes; the store checks uniqueness)."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_lead_code(text: str) -> bool:
    """True when text has the shape of a lead code (after trimming and upper-casing)."""
    return bool(CODE_RE.match(text.strip().upper()))
