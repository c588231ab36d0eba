"""The SMTP channel against a real server on loopback: reuse, classification, reconnection."""

from __future__ import annotations

import socket
from pathlib import Path

from distributor.channels.base import Envelope, Outcome
from distributor.channels.smtp import SmtpChannel
from distributor.devservers.ports import free_port
from distributor.devservers.smtp_sink import SmtpSink
from tests.support.smtp import RecordingHandler, SmtpServer

MESSAGE = b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nhello\r\n"


def channel_for(server: SmtpServer) -> SmtpChannel:
    return SmtpChannel(host="127.0.0.1", port=server.port, timeout=5)


def test_one_connection_carries_many_messages() -> None:
    with SmtpServer() as server:
        channel = channel_for(server)
        receipts = [channel.send(Envelope("from@x.org", f"r{i}@x.org", MESSAGE)) for i in range(20)]
        channel.close()
    assert {r.outcome for r in receipts} == {Outcome.SENT}
    assert channel.connections_opened == 1
    assert len(server.handler.received) == 20


def test_a_message_is_not_held_back_for_the_servers_acknowledgement() -> None:
    """Each write is a whole message or command group: no Nagle delay on its last segment."""
    with SmtpServer() as server:
        channel = channel_for(server)
        assert channel.send(Envelope("from@x.org", "r@x.org", MESSAGE)).outcome is Outcome.SENT
        connection = channel._connection
        assert connection is not None
        assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        channel.close()


def test_4xx_is_deferred_5xx_failed_and_the_connection_survives() -> None:
    def fault(recipient: str, attempt: int) -> str | None:
        if recipient.startswith("busy"):
            return "451 4.3.0 try again later"
        if recipient.startswith("gone"):
            return "550 5.1.1 mailbox unavailable"
        return None

    with SmtpServer(RecordingHandler(fault=fault)) as server:
        channel = channel_for(server)
        busy = channel.send(Envelope("f@x.org", "busy@x.org", MESSAGE))
        gone = channel.send(Envelope("f@x.org", "gone@x.org", MESSAGE))
        ok = channel.send(Envelope("f@x.org", "ok@x.org", MESSAGE))
        channel.close()
    assert (busy.outcome, busy.code) == (Outcome.DEFERRED, 451)
    assert (gone.outcome, gone.code) == (Outcome.FAILED, 550)
    assert "mailbox unavailable" in gone.response
    assert ok.outcome is Outcome.SENT
    assert channel.connections_opened == 1


def test_a_nul_in_an_answer_is_kept_as_a_replacement_character() -> None:
    """PostgreSQL text cannot hold a NUL: a server that answers with one must not keep its
    answer from being recorded (nor stop the drain that records it; test_claims records one)."""
    with SmtpServer(RecordingHandler(fault=lambda *_: "550 5.1.1 gone\x00here")) as server:
        channel = channel_for(server)
        receipt = channel.send(Envelope("f@x.org", "gone@x.org", MESSAGE))
        channel.close()
    assert (receipt.outcome, receipt.code) == (Outcome.FAILED, 550)
    assert receipt.response == "5.1.1 gone\ufffdhere"


def test_421_closes_and_the_next_message_reconnects() -> None:
    def fault(recipient: str, attempt: int) -> str | None:
        return "421 4.7.0 too busy, closing" if recipient.startswith("first") else None

    with SmtpServer(RecordingHandler(fault=fault)) as server:
        channel = channel_for(server)
        first = channel.send(Envelope("f@x.org", "first@x.org", MESSAGE))
        second = channel.send(Envelope("f@x.org", "second@x.org", MESSAGE))
        channel.close()
    assert (first.outcome, first.code) == (Outcome.DEFERRED, 421)
    assert second.outcome is Outcome.SENT
    assert channel.connections_opened == 2


def test_a_server_that_is_not_there_defers_instead_of_raising() -> None:
    channel = SmtpChannel(host="127.0.0.1", port=free_port(), timeout=2)
    receipt = channel.send(Envelope("f@x.org", "r@x.org", MESSAGE))
    assert receipt.outcome is Outcome.DEFERRED
    assert "connection failed" in receipt.response


def test_a_dropped_idle_connection_is_reopened_without_losing_the_message() -> None:
    with SmtpServer() as server:
        channel = channel_for(server)
        assert channel.send(Envelope("f@x.org", "a@x.org", MESSAGE)).outcome is Outcome.SENT
        assert channel._connection is not None
        channel._connection.sock.close()  # as if the server timed the idle connection out
        receipt = channel.send(Envelope("f@x.org", "b@x.org", MESSAGE))
        channel.close()
    assert receipt.outcome is Outcome.SENT
    assert [r.recipient for r in server.handler.received] == ["a@x.org", "b@x.org"]


def test_leading_dots_and_bare_newlines_arrive_intact() -> None:
    body = b"Subject: dots\r\n\r\n.hidden line\n..two dots\r\nlast"
    with SmtpServer() as server:
        channel = channel_for(server)
        receipt = channel.send(Envelope("f@x.org", "r@x.org", body))
        channel.close()
    assert receipt.outcome is Outcome.SENT
    received = server.handler.received[0].data
    assert received.replace(b"\r\n", b"\n").rstrip(b"\n") == body.replace(b"\r\n", b"\n")


def test_pipelined_transactions_and_refusals_on_a_pipelining_server(tmp_path: Path) -> None:
    # Postfix's smtp-sink speaks PIPELINING, unlike aiosmtpd; "-f rcpt" hard-rejects every RCPT TO.
    with (
        SmtpSink(tmp_path / "sink.log") as sink,
        SmtpSink(tmp_path / "refusing.log", "-f", "rcpt") as refusing,
    ):
        channel = SmtpChannel(host="127.0.0.1", port=sink.port, timeout=5)
        sent = [channel.send(Envelope("f@x.org", f"r{i}@x.org", MESSAGE)) for i in range(5)]
        assert channel._connection is not None and channel._connection.has_extn("pipelining")
        channel.close()
        strict = SmtpChannel(host="127.0.0.1", port=refusing.port, timeout=5)
        refused = [strict.send(Envelope("f@x.org", f"r{i}@x.org", MESSAGE)) for i in range(2)]
        strict.close()
    assert {r.outcome for r in sent} == {Outcome.SENT} and channel.connections_opened == 1
    assert [r.outcome for r in refused] == [Outcome.FAILED] * 2
    assert all(r.code is not None and 500 <= r.code < 600 for r in refused)
    assert strict.connections_opened == 1  # RSET after the refusal, same connection


def test_envelope_addresses_reach_the_server_as_given() -> None:
    """Plain addresses (the engine's, VERP return paths included) are written as they are; any
    other form is still reduced to its address, as smtplib does."""
    pairs = [
        ("newsletter@news.example.org", "reader000001@example.org"),
        ("bounces+d12.a1b2c3@news.example.org", "o'neil+tag@example.org"),
        ("杭州 <news@example.org>", "Reader <r@example.org>"),
    ]
    with SmtpServer() as server:
        channel = channel_for(server)
        receipts = [channel.send(Envelope(sender, to, MESSAGE)) for sender, to in pairs]
        channel.close()
    assert {r.outcome for r in receipts} == {Outcome.SENT}
    assert [(r.sender, r.recipient) for r in server.handler.received] == [
        ("newsletter@news.example.org", "reader000001@example.org"),
        ("bounces+d12.a1b2c3@news.example.org", "o'neil+tag@example.org"),
        ("news@example.org", "r@example.org"),
    ]
