"""Postfix's smtp-sink: a fast SMTP server that speaks PIPELINING (aiosmtpd does not).

It accepts and discards; with ``-c`` it prints counters, so its log says how many messages it took.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from distributor.devservers.processes import ServerProcess, find_program

BACKLOG = 1000  # its listen queue: enough for every connection a benchmark opens at once


class SmtpSink(ServerProcess):
    """smtp-sink on a free port, logging to ``log_path``; ``options`` go before the address
    (``"-f", "rcpt"`` hard-rejects every RCPT TO)."""

    def __init__(self, log_path: Path, *options: str) -> None:
        super().__init__(log_path)
        self.counters = log_path
        self.binary = find_program("smtp-sink", "postfix")
        self.options = options

    def argv(self) -> list[str]:
        as_nobody = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
        address = f"127.0.0.1:{self.port}"
        return [self.binary, "-c", *as_nobody, *self.options, address, str(BACKLOG)]

    def accepted(self) -> int:
        """Messages accepted so far (the last ``mesg=`` counter it printed)."""
        counters = re.findall(rb"mesg=(\d+)", self.counters.read_bytes()[-200:])
        return int(counters[-1]) if counters else 0
