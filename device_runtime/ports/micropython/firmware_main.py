"""What a MicroPython board runs at boot: wire the ports into the agent and go.

The configuration is a small JSON file written on the factory line (broker
address, credential paths, identity); the key file stays on the device. It may
also tune the agent's waits (AGENT_SETTINGS, in milliseconds or counts).
Progress goes to the console one line per step, which is what a HIL bench reads.
"""

import json

from device_runtime.core.agent import DeviceAgent
from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.micropython.clock import SystemClock
from device_runtime.ports.micropython.crypto import random_bytes
from device_runtime.ports.micropython.storage import DirectoryStore
from device_runtime.ports.micropython.transport import MqttTransport

AGENT_SETTINGS = (
    "timeout_ms",
    "retry_attempts",
    "retry_deadline_ms",
    "backoff_ms",
    "backoff_cap_ms",
)


def run(config_path: str, beats: int = 1) -> None:
    with open(config_path) as handle:
        config = json.load(handle)
    transport = MqttTransport(
        host=config["host"],
        port=config["port"],
        client_id=config["device_id"],
        ca_path=config["ca"],
        cert_path=config["cert"],
        key_path=config["key"],
        server_hostname=config.get("server_hostname", "localhost"),
    )
    agent = DeviceAgent(
        device_id=config["device_id"],
        hwmodel=config["hwmodel"],
        swname=config["swname"],
        swversion=config["swversion"],
        rot=config["rot"],
        transport=transport,
        clock=SystemClock(),
        store=DirectoryStore(directory=config["state_dir"]),
        random_bytes=random_bytes,
        prefix=config.get("prefix", "sevenfold"),
        **{name: config[name] for name in AGENT_SETTINGS if name in config},
    )
    try:
        print("boot", agent.boot())
        answer = agent.enroll()
        print("enrolled interval", answer["heartbeat_interval"])
        agent.run(beats=beats, on_beat=lambda ack: print("beat", ack["seq"]))
        print("done")
    except SevenfoldError as exc:
        print("error", exc.explain())
        raise
    finally:
        transport.close()
