"""A small authoritative DNS server on loopback (UDP), answering from a table the test writes:
what ``distributor doctor`` reads, without the internet."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

# (name without the final dot, record type) -> the records, in zone-file text.
Zone = dict[tuple[str, str], list[str]]


def txt(value: str) -> str:
    """A TXT record's text, in strings of at most 255 characters (a DKIM key needs several)."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


class DnsServer:
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.socket.getsockname()[1]}"

    def __enter__(self) -> DnsServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopped.set()
        self.thread.join()
        self.socket.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                data, client = self.socket.recvfrom(4096)
            except TimeoutError:
                continue
            self.socket.sendto(self.answer(dns.message.from_wire(data)).to_wire(), client)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        records = self.zone.get((name, kind))
        if records:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, "IN", kind, records)
            )
        elif not any(known == name for known, _ in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response
