"""Password hashing with argon2id, and the rule a new password must meet. Checking an unknown
name costs as much as a known one, so the time a login takes does not tell which names exist.

The rule is length and guessability: zxcvbn (Dropbox's estimator, with its lists of common
passwords, names, words and keyboard patterns) must rate a new password 3 of 4 or better, with
the account's own name and the product's words counted as known to an attacker."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from distributor.errors import StaffAccountError

PASSWORD_MIN = 10
PASSWORD_MAX = 1024  # argon2 takes any length; a limit keeps a login request cheap
MIN_SCORE = 3  # zxcvbn: "safely unguessable: moderate protection from offline slow-hash attack"
SCORED_CHARACTERS = 72  # zxcvbn's own limit; past it a password is long enough anyway
# Words an attacker tries first against this site, beside the account's name.
SITE_WORDS = ("distributor", "newsletter", "hzgh", "hangzhou", "staff", "admin", "editor")

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


def check_strength(password: str, *, name: str) -> None:
    """A new password for the account ``name``: long enough, and not one of the common, name-
    or site-derived passwords an attacker tries first."""
    if len(password) < PASSWORD_MIN:
        raise StaffAccountError(
            f"the password is too short: use at least {PASSWORD_MIN} characters",
            code="staff.password_short",
            least=PASSWORD_MIN,
        )
    if len(password) > PASSWORD_MAX:
        raise StaffAccountError(
            f"the password is too long: at most {PASSWORD_MAX} characters",
            code="staff.password_long",
            most=PASSWORD_MAX,
        )
    verdict = zxcvbn(password[:SCORED_CHARACTERS], user_inputs=[name, *SITE_WORDS])
    if verdict["score"] < MIN_SCORE:
        why = verdict["feedback"]["warning"] or "it is built from common words or patterns"
        raise StaffAccountError(
            f"the password is too easy to guess ({why.rstrip('.').lower()}): use a few "
            "unrelated words, or let a password manager make one",
            code="staff.password_guessable",
        )


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (checked by :func:`check_strength` when it is new)."""
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
