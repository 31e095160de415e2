"""What a MicroPython board runs at boot: wire the ports into the agent and go.

The configuration is a small JSON file written on the factory line (broker
address, credential paths, identity); the key file stays on the device. It may
also tune the agent's waits (AGENT_SETTINGS, in milliseconds or counts).
Progress goes to the console one line per step, which is what a HIL bench reads.

A board that attests (docs/attestation.md) has ``measured_boot.SETTINGS`` in
its configuration instead of a key file; its root of trust measures the image
and this configuration, and the agent attests through the recovery listener
before it enrolls. That module is imported only then: a board that does not
attest keeps its heap.
"""

import json

from device_runtime.core.agent import DeviceAgent
from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.micropython.clock import SystemClock
from device_runtime.ports.micropython.crypto import random_bytes
from device_runtime.ports.micropython.storage import DirectoryStore
from device_runtime.ports.micropython.transport import MqttTransport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.attestor import Attestor
    from device_runtime.ports.micropython.link import MqttLink

AGENT_SETTINGS = (
    "timeout_ms",
    "retry_attempts",
    "retry_deadline_ms",
    "backoff_ms",
    "backoff_cap_ms",
)


def run(config_path: str, beats: int = 1) -> None:
    with open(config_path, "rb") as handle:
        raw = handle.read()
    config = json.loads(raw)
    store = DirectoryStore(directory=config["state_dir"])
    link: "MqttLink | None" = None
    attestor: "Attestor | None" = None
    transport = None
    if "recovery_port" in config:
        from device_runtime.ports.micropython import measured_boot

        link, attestor = measured_boot.attesting(config, raw, store)
    else:
        transport = MqttTransport(
            host=config["host"],
            port=config["port"],
            client_id=config["device_id"],
            ca_path=config["ca"],
            cert_path=config["cert"],
            key_path=config["key"],
            server_hostname=config.get("server_hostname", "localhost"),
        )
    settings = {
        "device_id": config["device_id"],
        "hwmodel": config["hwmodel"],
        "swname": config["swname"],
        "swversion": config["swversion"],
        "rot": config["rot"],
        "clock": SystemClock(),
        "store": store,
        "random_bytes": random_bytes,
        "prefix": config.get("prefix", "sevenfold"),
    }
    for name in AGENT_SETTINGS:
        if name in config:
            settings[name] = config[name]
    if link is not None and attestor is not None:
        from device_runtime.core.attesting_agent import AttestingAgent

        agent: "DeviceAgent" = AttestingAgent(link=link, evidence=attestor, **settings)
    else:
        assert transport is not None
        agent = DeviceAgent(transport=transport, **settings)
    clock = agent.clock
    started = clock.monotonic_ms()
    try:
        print("boot", agent.boot())
        verdict = getattr(agent, "verdict", None)
        if verdict is not None:
            # From the recovery listener's TLS handshake to the fleet listener's session.
            took = clock.monotonic_ms() - started
            print("attested", verdict["status"], verdict["code"], "in", took, "ms")
        answer = agent.enroll()
        print("enrolled interval", answer["heartbeat_interval"])
        agent.run(beats=beats, on_beat=lambda ack: print("beat", ack["seq"]))
        print("done")
    except SevenfoldError as exc:
        verdict = getattr(agent, "verdict", None) or {}
        if verdict.get("status") == "contraindicated":
            print("attested contraindicated", verdict["code"])
        print("error", exc.explain())
        raise
    finally:
        agent.transport.close()


def main(argv: "list[str]") -> None:
    """``CONFIG_PATH [BEATS]``: the entry point a launcher calls with the board's arguments."""
    run(argv[0], int(argv[1]) if len(argv) > 1 else 1)
