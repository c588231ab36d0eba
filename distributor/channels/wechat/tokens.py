"""One access token per Official Account, shared by every worker on every machine.

WeChat lets each AppID hold one current token, and a refresh may cut off the one the other
workers use; a worker that refreshed on its own would make the others fail in turn. So the
token lives in a shared store (Redis when there is one, else the database), and a refresh is
done under a lease by one worker while the others wait for what it stores.

What this guarantees: all workers sharing a store use the token in it; one expiry, or one token
WeChat rejected, leads to one fetch across all of them (a worker that takes the lease reads the
store again and uses a newer token if another worker stored one meanwhile). Only a worker that
dies holding the lease costs a second fetch, by whoever takes the lease after it expires.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.wechat.models import WechatToken
from distributor.db import insert_ignoring_duplicates
from distributor.errors import WechatError

REFRESH_MARGIN_SECONDS = 300.0  # the platform itself rotates a stable token in its last 5 minutes
LEASE_SECONDS = 30.0  # longer than one token call with its timeout
POLL_SECONDS = 0.05

Clock = Callable[[], float]


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    expires_at: float
    refresh_at: float

    @classmethod
    def issued(cls, access_token: str, expires_in: float, now: float, margin: float) -> StoredToken:
        """A token WeChat just gave, to be refreshed ``margin`` seconds before it expires.

        A stable token can come back with little life left (the same token, its remaining
        seconds); then it is used for half of what is left, so asking again stays rare.
        """
        expires_at = now + expires_in
        refresh_at = expires_at - margin
        if refresh_at <= now:
            refresh_at = now + expires_in / 2
        return cls(access_token, expires_at, refresh_at)


@dataclass(frozen=True)
class FetchedToken:
    access_token: str
    expires_in: float


class TokenStore(Protocol):
    def read(self) -> StoredToken | None: ...

    def try_lease(self, holder: str, seconds: float) -> bool:
        """Become the one worker that fetches a token, unless another one is."""
        ...

    def write(self, token: StoredToken, holder: str) -> None:
        """Store the new token and give the lease back."""
        ...

    def release(self, holder: str) -> None: ...


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    def __init__(self, client: redis.Redis, app_id: str) -> None:
        self.client = client
        self.key = f"wechat:token:{app_id}"
        self.lease_key = f"{self.key}:lease"
        self._release = client.register_script(_RELEASE)

    def read(self) -> StoredToken | None:
        raw = self.client.get(self.key)
        if raw is None:
            return None
        return StoredToken(**json.loads(raw))

    def try_lease(self, holder: str, seconds: float) -> bool:
        return bool(self.client.set(self.lease_key, holder, nx=True, px=int(seconds * 1000)))

    def write(self, token: StoredToken, holder: str) -> None:
        # Redis forgets the token a minute after it expires: tidiness only, the record decides.
        lifetime_ms = max(int((token.expires_at - time.time() + 60) * 1000), 60_000)
        value = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "refresh_at": token.refresh_at,
            }
        )
        self.client.set(self.key, value, px=lifetime_ms)
        self.release(holder)

    def release(self, holder: str) -> None:
        self._release(keys=[self.lease_key], args=[holder])


class DatabaseTokenStore:
    """The same in the ``wechat_tokens`` table: a conditional UPDATE is the lease."""

    def __init__(self, factory: sessionmaker[Session], app_id: str) -> None:
        self.factory = factory
        self.app_id = app_id

    def read(self) -> StoredToken | None:
        with self.factory() as session:
            row = session.get(WechatToken, self.app_id)
            if row is None or row.access_token is None:
                return None
            return StoredToken(row.access_token, row.expires_at, row.refresh_at)

    def try_lease(self, holder: str, seconds: float) -> bool:
        with self.factory.begin() as session:
            now = time.time()
            insert_ignoring_duplicates(session, WechatToken, [{"app_id": self.app_id}])
            taken = session.execute(
                update(WechatToken)
                .where(
                    WechatToken.app_id == self.app_id,
                    (WechatToken.lease_holder.is_(None)) | (WechatToken.lease_until < now),
                )
                .values(lease_holder=holder, lease_until=now + seconds)
                .returning(WechatToken.app_id)
            ).first()
            return taken is not None

    def write(self, token: StoredToken, holder: str) -> None:
        with self.factory.begin() as session:
            session.execute(
                update(WechatToken)
                .where(WechatToken.app_id == self.app_id)
                .values(
                    access_token=token.access_token,
                    expires_at=token.expires_at,
                    refresh_at=token.refresh_at,
                    lease_holder=None,
                    lease_until=0.0,
                )
            )

    def release(self, holder: str) -> None:
        with self.factory.begin() as session:
            session.execute(
                update(WechatToken)
                .where(WechatToken.app_id == self.app_id, WechatToken.lease_holder == holder)
                .values(lease_holder=None, lease_until=0.0)
            )


# Fetch a token from WeChat; True asks for a new one even if the current one is still valid.
Fetch = Callable[[bool], FetchedToken]


class AccessTokens:
    """The token to call WeChat with: the stored one, refreshed by one worker when it must be."""

    def __init__(
        self,
        store: TokenStore,
        fetch: Fetch,
        *,
        margin: float = REFRESH_MARGIN_SECONDS,
        wait_seconds: float = LEASE_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.fetch = fetch
        self.margin = margin
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.fetches = 0  # how many times this process asked WeChat for a token

    def current(self) -> str:
        """A token with some life left; refreshed first when it is close to expiry."""
        return self._obtain(stale=None)

    def replace(self, rejected: str) -> str:
        """A token other than ``rejected``, which WeChat refused (40001/40014/42001)."""
        return self._obtain(stale=rejected)

    def _usable(self, token: StoredToken | None, stale: str | None) -> bool:
        if token is None or token.access_token == stale:
            return False
        now = self.clock()
        return now < token.refresh_at if stale is None else now < token.expires_at

    def _obtain(self, stale: str | None) -> str:
        deadline = time.monotonic() + self.wait_seconds
        holder = uuid.uuid4().hex
        while True:
            stored = self.store.read()
            if stored is not None and self._usable(stored, stale):
                return stored.access_token
            if self.store.try_lease(holder, LEASE_SECONDS):
                try:
                    return self._refresh(holder, stale)
                except BaseException:
                    self.store.release(holder)
                    raise
            if time.monotonic() > deadline:
                raise WechatError(
                    f"another worker has been fetching the WeChat access token for more than "
                    f"{self.wait_seconds:.0f} s; WeChat or the token store may be slow",
                    api="stable_token",
                    code="wechat.token_wait",
                    seconds=round(self.wait_seconds),
                )
            time.sleep(POLL_SECONDS)

    def _refresh(self, holder: str, stale: str | None) -> str:
        stored = self.store.read()  # another worker may have stored one since we looked
        if stored is not None and self._usable(stored, stale):
            self.store.release(holder)
            return stored.access_token
        self.fetches += 1
        fetched = self.fetch(False)
        if stale is not None and fetched.access_token == stale:
            # WeChat refused this token yet hands it out again: ask for a new one.
            self.fetches += 1
            fetched = self.fetch(True)
        token = StoredToken.issued(
            fetched.access_token, fetched.expires_in, self.clock(), self.margin
        )
        self.store.write(token, holder)
        return token.access_token
