"""The anchor of the fleet benchmarks: answer every request by sending its bytes back.

No decoding, no validation, no database: what MQTT over mutual TLS alone costs
behind the same broker policy (the same ACLs, a shared subscription, requests
at QoS 1 and answers at QoS 0 as the server sends them, Nagle off). Run as
``python -m bench.mqtt_echo HOST PORT CA CERT KEY``; it prints ``ready`` once
subscribed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_runtime.ports.cpython.transport import disable_nagle
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import IssuedCredential
from fleet_platform.server_replicas import shared_up_filter


def main() -> None:
    host, port, ca, cert, key = sys.argv[1:6]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="sevenfold-server", protocol=mqtt.MQTTv5
    )
    credential = IssuedCredential(cert_path=Path(cert), key_path=Path(key))
    client.tls_set_context(client_context(ca_path=Path(ca), credential=credential))
    client.on_socket_open = disable_nagle

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        # QoS 0, as the fleet server answers.
        c.publish(msg.topic[: -len("up")] + "down", msg.payload, qos=0)

    def on_connect(c: mqtt.Client, *args: object) -> None:
        c.subscribe(shared_up_filter("sevenfold", "echo"), qos=1)
        print("ready", flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_forever()


if __name__ == "__main__":
    main()
