"""A MicroPython board's agent from a test's configuration file (JSON: host, port, device_id,
ca, cert, key, state_dir): the MQTT-over-mTLS transport and the agent the device stages of
``test_update_status_under_micropython`` and ``test_outbox_under_micropython`` both boot."""

PORTABLE_HELPER = True


def configured_agent(path):
    """``(config, transport, agent)``; the caller boots the agent and closes the transport."""
    import json

    from device_runtime.core.agent import DeviceAgent
    from device_runtime.ports.micropython.clock import SystemClock
    from device_runtime.ports.micropython.crypto import random_bytes
    from device_runtime.ports.micropython.storage import DirectoryStore
    from device_runtime.ports.micropython.transport import MqttTransport

    with open(path) as handle:
        config = json.load(handle)
    transport = MqttTransport(
        host=config["host"],
        port=config["port"],
        client_id=config["device_id"],
        ca_path=config["ca"],
        cert_path=config["cert"],
        key_path=config["key"],
    )
    agent = DeviceAgent(
        device_id=config["device_id"],
        hwmodel="mcu-board",
        swname="sevenfold-mpy",
        swversion="1.0.0",
        rot="software",
        transport=transport,
        clock=SystemClock(),
        store=DirectoryStore(directory=config["state_dir"]),
        random_bytes=random_bytes,
        timeout_ms=10000,
    )
    return config, transport, agent
