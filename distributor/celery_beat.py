"""The Celery app as the scheduler runs it (``celery -A distributor.celery_beat beat``): the same
broker, schedule, logging and checks as :mod:`distributor.celery`, without the task modules, which
a scheduler never runs (it sends the periodic tasks by name). A scheduler process so stays about
40 MB smaller, which lets a sending process per core fit in the workers' memory."""

from __future__ import annotations

from distributor.celery import make_app, startup_settings

app = make_app(startup_settings(), tasks=False)
