"""The managed broker's log stays bounded: no line per connection, rotation, reading its end."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
import tracemalloc
from pathlib import Path

from fleet_platform.broker import MosquittoBroker
from fleet_platform.child_log import TAIL_BYTES
from fleet_platform.pki import CertificateAuthority
from tests.broker_fixtures import StartBroker, session_to

WAIT = 10.0


def killed(broker: MosquittoBroker) -> None:
    """SIGKILL the broker's process, as a crash would, and wait until it is gone."""
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT
    while broker.running:
        assert time.monotonic() < deadline, "mosquitto survived SIGKILL"
        time.sleep(0.02)


def failed_handshakes(broker: MosquittoBroker, count: int) -> None:
    """Connections that present no client certificate: mosquitto logs an error for each."""
    context = ssl.create_default_context(cafile=str(broker.ca_path))
    for _ in range(count):
        try:
            with (
                socket.create_connection((broker.host, broker.port), timeout=WAIT) as raw,
                context.wrap_socket(raw, server_hostname=broker.host) as tls,
            ):
                tls.sendall(b"\x10\x00")
                tls.recv(4)
        except (OSError, ssl.SSLError):
            pass


def test_connections_are_not_logged(
    fleet_ca: CertificateAuthority, start_broker: StartBroker, tmp_path: Path
) -> None:
    with start_broker(grants=["dev-chatty"]) as broker:
        config = broker.config_path.read_text().splitlines()
        assert "connection_messages false" in config
        assert {line for line in config if line.startswith("log_type ")} == {
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        }
        before = broker.log_path.read_bytes()
        credential = fleet_ca.issue_client(common_name="dev-chatty", directory=tmp_path)
        sessions = []
        for attempt in range(20):
            # One username, so each session takes the previous one over.
            session = session_to(broker, credential, client_id=f"dev-chatty-{attempt}")
            assert session.accepted()
            sessions.append(session)
        last = sessions[-1]
        last.publish("sevenfold/d/dev-chatty/up", b"fine")
        last.client.publish("sevenfold/d/someone-else/up", b"denied", qos=0)
        last.client.publish("sevenfold/d/dev-chatty/up", b"x" * 9000, qos=0)  # over the limit
        assert last.disconnected.wait(WAIT)
        for session in sessions:
            session.close()
        time.sleep(0.2)
        after = broker.log_path.read_bytes()
    assert after == before, after[len(before) :].decode(errors="replace")
    assert b"dev-chatty" not in after and b"broker-probe" not in after
    # What information adds without connection messages: mosquitto's own life.
    assert b"Opening ipv4 listen socket" in before


def test_why_it_died_is_read_from_the_end_of_a_huge_log(start_broker: StartBroker) -> None:
    with start_broker(log_limit=1 << 30) as broker:
        chunk = (b"o" * 99 + b"\n") * ((1 << 20) // 100)
        with broker.log_path.open("ab") as log:
            for _ in range(32):  # 32 MiB written since launch
                log.write(chunk)
            log.write(b"the last words\n")
        killed(broker)
        tracemalloc.start()
        try:
            output = broker.launch_output()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert output.endswith("the last words")
    assert peak < 4 * TAIL_BYTES, f"{peak} bytes read into memory for a 32 MiB log"


def test_log_over_the_limit_is_rotated_at_relaunch(start_broker: StartBroker) -> None:
    limit = 64 << 10
    # Checked hourly while it runs: only the relaunch may rotate here.
    with start_broker(log_limit=limit, log_check_interval=3600.0) as broker:
        with broker.log_path.open("ab") as log:
            log.write(b"an old complaint\n" * (limit // 10))
        killed(broker)
        broker.relaunch()
        assert broker.running
        previous = broker.log_path.with_name("mosquitto.log.1")
        assert b"an old complaint" in previous.read_bytes()
        assert b"an old complaint" not in broker.log_path.read_bytes()
        assert broker.log_path.stat().st_size < limit
        for path in (previous, broker.log_path):
            assert path.stat().st_mode & 0o777 == 0o600
        # Under the limit, a relaunch appends: the previous run's words stay readable.
        with broker.log_path.open("ab") as log:
            log.write(b"a recent complaint\n")
        killed(broker)
        broker.relaunch()
        assert b"a recent complaint" in broker.log_path.read_bytes()
        assert "a recent complaint" not in broker.launch_output()
        assert b"an old complaint" in previous.read_bytes()


def test_a_flood_of_failed_handshakes_cannot_fill_the_disk(start_broker: StartBroker) -> None:
    """mosquitto logs an error per failed TLS handshake; the log is rotated while it runs."""
    limit = 8 << 10
    with start_broker(log_limit=limit, log_check_interval=0.05) as broker:
        previous = broker.log_path.with_name("mosquitto.log.1")
        start_size = broker.log_path.stat().st_size
        rounds = 0
        while not previous.exists():
            assert rounds < 40, "the log was never rotated"
            failed_handshakes(broker, 50)
            rounds += 1
        failed_handshakes(broker, 600)  # some 50 KB more, six times the limit
        deadline = time.monotonic() + WAIT
        while broker.log_path.stat().st_size > limit:
            assert time.monotonic() < deadline, "the log stayed over its limit"
            time.sleep(0.02)
        assert b"OpenSSL Error" in previous.read_bytes()
        assert previous.stat().st_size < 4 * limit
        for path in (previous, broker.log_path):
            assert b"\0" not in path.read_bytes(), "mosquitto wrote past a truncated end"
        assert start_size < limit
        # Still the same healthy broker, and what it writes now still reaches the log.
        assert broker.running
        failed_handshakes(broker, 1)
        deadline = time.monotonic() + WAIT
        while "OpenSSL Error" not in broker.launch_output():
            assert time.monotonic() < deadline, "nothing written after the rotation"
            time.sleep(0.02)
