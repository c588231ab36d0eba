"""Servers the demo, the tests and the benchmarks start for themselves, on loopback.

Never used in production, where the database, the broker and the SMTP relay are real services.
One module per server; each starts on a free port and stops everything it started.
"""
