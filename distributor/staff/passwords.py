"""Password hashing with argon2id. Checking an unknown name costs as much as a known one, so
the time a login takes does not tell which names exist."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from distributor.errors import StaffAccountError

PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # argon2 takes any length; a limit keeps a login request cheap

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


def check_strength(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise StaffAccountError(
            f"the password is too short: use at least {PASSWORD_MIN} characters"
        )
    if len(password) > PASSWORD_MAX:
        raise StaffAccountError(f"the password is too long: at most {PASSWORD_MAX} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; ``stored_hash`` None (no such user, no password set)
    is checked against a dummy hash so that it takes as long and is always False."""
    if len(password) > PASSWORD_MAX:
        return False
    try:
        matched = _hasher.verify(stored_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matched and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
