"""A hostile attested board: N messages of every kind it can send on its attestation plane.

The board holds a real fleet certificate (it attested once), so the broker
lets it publish on ``att/up``, and that plane stays open even after a refusal
or a quarantine: it is the plane a hostile certificate holder can always
reach. It cycles garbage, truncated and oversized CBOR, challenge requests
beyond the outstanding limit, evidence that is not a token, a genuine token
over a nonce the server never issued (replayed every cycle), a quote that is
not a quote, answers and application requests on the wrong plane, and
publishes into another board's attestation topic, as fast as paho publishes
at QoS 0. Used by ``tests/sevenfold/test_attestation_flood.py``; run as

    python -m bench.attestation_flood_device DIRECTORY HWMODEL HOST PORT CA COUNT SECONDS

It sends at least COUNT messages and keeps on for at least SECONDS, then
prints how many it sent and in how many seconds.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from device_runtime.core import cbor, protocol
from device_runtime.core.attestor import Attestor
from device_runtime.core.console import read_installed
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.tls_credential import key_file
from device_runtime.simulated_board import board_attestor, first_stage
from device_runtime.simulator import FLEET_CERT_FILE, BootedImage, open_root_of_trust

CORRELATION = b"\x02" * 8


def messages(attestor: Attestor) -> list[bytes]:
    """One of each kind; the genuine token answers a nonce no server issued."""
    genuine = attestor.body(b"\x5a" * protocol.NONCE_BYTES, 1, 1)
    forged_quote = dict(genuine, quote=b"\x00" * 64, quote_signature=b"\x01" * 64)
    return [
        b"\xff\x00garbage",
        b"\xa4",
        b"\x00" * (protocol.MAX_MESSAGE + 1),
        protocol.encode("challenge", CORRELATION, {}),
        protocol.encode("challenge", CORRELATION, {}),
        protocol.encode("evidence", CORRELATION, {"token": b"\xd2\x84" + b"\x00" * 200}),
        protocol.encode("evidence", CORRELATION, genuine),
        protocol.encode("evidence", CORRELATION, forged_quote),
        protocol.encode("heartbeat", CORRELATION, {"seq": 1, "uptime": 1, "boot_count": 1}),
        protocol.encode("attest-now", CORRELATION, {}),
        cbor.dumps({"v": 1, "t": "evidence", "id": CORRELATION, "b": {"token": "text"}}),
    ]


def main() -> None:
    directory, hwmodel, host, port, ca, count, seconds = sys.argv[1:8]
    board = Path(directory)
    record = read_installed(DirectoryStore(directory=board))
    assert record is not None, f"{board} is not provisioned"
    device_id = board.name
    # The Alias key is derived from the image it boots.
    with contextlib.closing(
        first_stage(board, open_root_of_trust(kind="dice", directory=board))
    ) as flash:
        verified = flash.boot.image
    image = BootedImage(verified.version, verified.security_counter, verified.image_hash)
    rot = open_root_of_trust(kind="dice", directory=board, hwmodel=hwmodel, image=image)
    deviceid = x509.load_der_x509_certificate(record["device-cert"])  # type: ignore[arg-type]
    attestor = board_attestor(
        rot=rot,
        device_id=device_id,
        deviceid_certificate=deviceid.public_bytes(serialization.Encoding.DER),
        hwmodel=hwmodel,
        image=image,
        config_digest=b"\x00" * 32,
    )
    payloads = messages(attestor)
    own = protocol.topic(protocol.DEFAULT_PREFIX, device_id, "att/up")
    other = protocol.topic(protocol.DEFAULT_PREFIX, "someone-else", "att/up")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    with key_file(rot.evidence_key()) as key:
        client.tls_set(ca_certs=ca, certfile=str(board / FLEET_CERT_FILE), keyfile=str(key))
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    started = time.monotonic()
    sent = 0
    while sent < int(count) or time.monotonic() - started < float(seconds):
        for payload in payloads:
            client.publish(own, payload, qos=0)
            sent += 1
        client.publish(other, payloads[3], qos=0)
        sent += 1
    client.disconnect()
    client.loop_stop()
    print(sent, round(time.monotonic() - started, 2), flush=True)


if __name__ == "__main__":
    main()
