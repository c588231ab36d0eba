"""The SMTP channel against a real server on loopback: reuse, classification, reconnection."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from distributor.channels.base import Envelope, Outcome
from distributor.channels.smtp import SmtpChannel
from distributor.devservers.ports import free_port
from distributor.devservers.smtp_sink import SmtpSink
from tests.support.smtp import PipeliningHandler, RecordingHandler, SmtpServer, Tap

MESSAGE = b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nhello\r\n"


def channel_for(server: SmtpServer) -> SmtpChannel:
    return SmtpChannel(host="127.0.0.1", port=server.port, timeout=5)


def envelopes(*names: str) -> list[Envelope]:
    return [Envelope("f@x.org", f"{name}@x.org", MESSAGE) for name in names]


def recipients(server: SmtpServer) -> list[str]:
    return [r.recipient for r in server.handler.received]


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


def test_the_next_message_is_started_behind_the_content_of_the_one_before() -> None:
    """RFC 2920: the next transaction's commands go in the same write as the content before
    them, so each message waits for the server once, not twice."""
    with SmtpServer(PipeliningHandler()) as server, Tap(server.port) as tap:
        channel = SmtpChannel(host="127.0.0.1", port=tap.port, timeout=5)
        a, b, c = envelopes("a", "b", "c")
        receipts = [channel.send(a, then=b), channel.send(b, then=c), channel.send(c)]
        channel.close()
    assert {r.outcome for r in receipts} == {Outcome.SENT}
    assert recipients(server) == ["a@x.org", "b@x.org", "c@x.org"]
    assert channel.connections_opened == 1
    writes = [data for side, data in tap.turns() if side == "client"]
    for name in ("b", "c"):
        started = f"hello\r\n.\r\nMAIL FROM:<f@x.org>\r\nRCPT TO:<{name}@x.org>\r\nDATA\r\n"
        assert any(started.encode() in write for write in writes), writes


def test_a_started_message_that_is_not_sent_next_is_dropped_never_delivered() -> None:
    """The server waits for the started message's content: it is taken back by closing the
    connection. A "." or a QUIT would end it as an empty (or "QUIT") message."""
    with SmtpServer(PipeliningHandler()) as server:
        channel = channel_for(server)
        a, b, c, d, e, f = envelopes("a", "b", "c", "d", "e", "f")
        receipts = [channel.send(a, then=b), channel.send(c, then=d)]  # not b: b dropped
        channel.drop_started()  # d is not coming
        receipts.append(channel.send(e, then=f))
        channel.close()  # nor f
        server.handler.wait_for(3, timeout=5)
        time.sleep(0.2)  # anything the server would still make of the dropped ones
    assert {r.outcome for r in receipts} == {Outcome.SENT}
    assert recipients(server) == ["a@x.org", "c@x.org", "e@x.org"]
    assert channel.connections_opened == 3


def test_a_started_message_refused_at_rcpt_is_failed_and_the_connection_goes_on() -> None:
    def refuse(address: str) -> str | None:
        return "550 5.1.1 no such mailbox" if address.startswith("gone") else None

    with SmtpServer(PipeliningHandler(refuse_rcpt=refuse)) as server:
        channel = channel_for(server)
        a, gone, c = envelopes("a", "gone", "c")
        receipts = [channel.send(a, then=gone), channel.send(gone, then=c), channel.send(c)]
        channel.close()
    assert [(r.outcome, r.code) for r in receipts] == [
        (Outcome.SENT, 250), (Outcome.FAILED, 550), (Outcome.SENT, 250)
    ]
    assert "no such mailbox" in receipts[1].response
    assert recipients(server) == ["a@x.org", "c@x.org"]
    assert channel.connections_opened == 1


def test_a_refused_message_leaves_the_one_started_behind_it_to_go_out() -> None:
    """A refusal of the content ends that transaction only: the next one, started behind it,
    goes on the same connection (no RSET, which would end it); after a 421 on a new one."""

    def fault(recipient: str, attempt: int) -> str | None:
        if recipient.startswith("spam"):
            return "554 5.7.1 message refused"
        if recipient.startswith("closing") and attempt == 1:
            return "421 4.3.2 shutting down"
        return None

    with SmtpServer(PipeliningHandler(fault=fault)) as server:
        channel = channel_for(server)
        spam, b, closing, d = envelopes("spam", "b", "closing", "d")
        receipts = [
            channel.send(spam, then=b),
            channel.send(b, then=closing),
            channel.send(closing, then=d),
            channel.send(d),
        ]
        channel.close()
    assert [(r.outcome, r.code) for r in receipts] == [
        (Outcome.FAILED, 554), (Outcome.SENT, 250), (Outcome.DEFERRED, 421), (Outcome.SENT, 250)
    ]
    assert recipients(server) == ["b@x.org", "d@x.org"]  # d once: on the new connection
    assert channel.connections_opened == 2


def test_a_started_message_whose_connection_died_goes_on_a_new_one_once() -> None:
    """Lost before the server answered its commands: nothing of it went, so it is sent again
    on a new connection, as a message whose connection died before DATA."""
    handler = PipeliningHandler(rcpt_delay={"b@x.org": 0.5})
    with SmtpServer(handler) as server, Tap(server.port) as tap:
        channel = SmtpChannel(host="127.0.0.1", port=tap.port, timeout=5)
        a, b = envelopes("a", "b")
        first = channel.send(a, then=b)
        tap.cut()  # while the server still thinks about b's RCPT
        handler.rcpt_delay.clear()
        second = channel.send(b)
        channel.close()
    assert (first.outcome, second.outcome) == (Outcome.SENT, Outcome.SENT)
    assert recipients(server) == ["a@x.org", "b@x.org"]
    assert channel.connections_opened == 2


def test_without_pipelining_nothing_is_started_ahead() -> None:
    with SmtpServer() as server, Tap(server.port) as tap:
        channel = SmtpChannel(host="127.0.0.1", port=tap.port, timeout=5)
        a, b = envelopes("a", "b")
        receipts = [channel.send(a, then=b), channel.send(b)]
        channel.close()
    assert {r.outcome for r in receipts} == {Outcome.SENT}
    assert recipients(server) == ["a@x.org", "b@x.org"]
    assert not any(b".\r\nMAIL" in data for side, data in tap.turns() if side == "client")
