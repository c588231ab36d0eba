"""The sending engine, channel-neutral: plan a send's deliveries, claim them, dispatch them to a
channel, record every answer; rate limits, dispatcher slots, a send's life cycle, the scheduler's
tick, recurring digests and staff test sends; whom a send reaches before it is planned
(:mod:`~distributor.sending.reach`, counted with the planner's own conditions).

Owns the tables of sends, deliveries and their attempt log (:mod:`distributor.sending.models`).
May import the ground floor (vocabulary, config, db, errors) and the rooms below the engines:
``issues``, ``subscribers``, ``render``, ``channels``. It never imports another engine
(``wechat``, ``bounces``' effects, ``readers``), ``campaigns``, ``runtime`` or a face: a channel
that sends by jobs of its own plugs into the tick as a
:class:`~distributor.sending.scheduler.JobQueue`.
"""
