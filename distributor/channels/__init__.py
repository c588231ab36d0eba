"""Channels deliver one message and answer what happened. They know nothing of sends or retries."""
