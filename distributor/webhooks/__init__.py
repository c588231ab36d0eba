"""Outgoing webhooks: staff register a URL for kinds of events; each event the outbox holds
(:mod:`distributor.outbox`) is posted to it, signed, until it answers 2xx or the tries run out.

Owns the tables of webhooks and their deliveries (:mod:`.models`): one row per webhook and
event, its attempts, its last answer: the delivery log. :mod:`.signing` is pure (the signature
a receiver checks); :mod:`.store` registers and lists; :mod:`.deliver` fans the outbox out and
posts, a Celery beat task's work, so sending never waits on a receiver.

An engine-floor room: it reads only the outbox and the ground floor; only the faces (and the
worker's tasks) import it.
"""
