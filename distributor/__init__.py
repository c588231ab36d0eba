"""distributor: import a newsletter issue, render it once, send it to every subscriber exactly once.

``celery -A distributor worker`` finds the Celery app in :mod:`distributor.celery`.
"""
