"""Live capture on loopback: real pymodbus and bacpypes3 peers, the sensor watching ``lo``.

Each peer uses its own 127.0.0.x address so that the inventory can tell the
devices apart, and free ports so that parallel test runs do not collide; the
dissectors are told which ports carry Modbus and BACnet by subclassing them
with those ports, the sensor's own way of configuring dissectors.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import typer
from bacpypes3.app import Application  # type: ignore[import-untyped]
from bacpypes3.argparse import SimpleArgumentParser  # type: ignore[import-untyped]
from bacpypes3.pdu import Address  # type: ignore[import-untyped]
from pymodbus.client import ModbusTcpClient
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer
from typer.testing import CliRunner, Result

from passive_monitor.alerts.engine import Detector
from passive_monitor.alerts.model import Alert
from passive_monitor.baseline import Baseline
from passive_monitor.dissectors.bacnet import BacnetDissector
from passive_monitor.dissectors.modbus import ModbusTcp
from passive_monitor.inventory import Asset, InventoryBuilder
from passive_monitor.oui import DEFAULT_DIRECTORY
from passive_monitor.sensor import Sensor
from sevenfold.cli.monitor import monitor_command
from tests.components import free_port
from tests.strict_mode import missing

PLC = "127.0.0.5"
HMI = "127.0.0.6"
INTRUDER = "127.0.0.7"
BACNET_DEVICE = "127.0.0.8"
BACNET_CLIENT = "127.0.0.9"
DEVICE_INSTANCE = 4242
DEADLINE = 20.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class LiveSensor:
    """The sensor on ``lo`` in a thread, feeding the inventory and the current detector."""

    sensor: Sensor
    detector: Detector
    builder: InventoryBuilder = field(default_factory=InventoryBuilder)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    raised: list[Alert] = field(default_factory=list)

    def run(self) -> None:
        for observation in self.sensor.observe_interface("lo", stop=self.stop):
            with self.lock:
                self.builder.observe(observation)
                self.raised.extend(self.detector.observe(observation))

    def asset(self, ip: str) -> Asset | None:
        with self.lock:
            return self.builder.snapshot().get(ip)

    def switch(self, detector: Detector) -> None:
        with self.lock:
            self.detector = detector


@pytest.fixture
def modbus_server() -> Iterator[int]:
    port = free_port()
    block = ModbusSequentialDataBlock(1, [0] * 100)  # type: ignore[no-untyped-call]
    context = ModbusServerContext(
        devices=ModbusDeviceContext(di=block, co=block, hr=block, ir=block), single=True
    )
    identity = ModbusDeviceIdentification(  # type: ignore[no-untyped-call]
        info_name={
            "VendorName": "Sevenfold Test",
            "ProductCode": "LIVE-1",
            "MajorMinorRevision": "2.1",
        }
    )
    loop = asyncio.new_event_loop()
    servers: list[ModbusTcpServer] = []

    async def serve() -> None:
        server = ModbusTcpServer(context, identity=identity, address=(PLC, port))
        servers.append(server)
        await server.serve_forever()

    def accepting() -> bool:
        try:
            socket.create_connection((PLC, port), timeout=1.0).close()
        except OSError:
            return False
        return True

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    wait_for(accepting, "the Modbus server")
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(servers[0].shutdown(), loop).result(timeout=10)  # type: ignore[no-untyped-call]
        thread.join(timeout=10)
        loop.close()


async def who_is(device_port: int, client_port: int) -> list[tuple[object, int]]:
    parser = SimpleArgumentParser()
    device = Application.from_args(
        parser.parse_args(
            ["--address", f"{BACNET_DEVICE}/32:{device_port}", "--instance", str(DEVICE_INSTANCE)]
        )
    )
    client = Application.from_args(
        parser.parse_args(["--address", f"{BACNET_CLIENT}/32:{client_port}", "--instance", "4243"])
    )
    try:
        target = Address(f"{BACNET_DEVICE}:{device_port}")
        answers = await asyncio.wait_for(
            client.who_is(DEVICE_INSTANCE, DEVICE_INSTANCE, target), DEADLINE
        )
        return [(answer.iAmDeviceIdentifier, int(answer.vendorID)) for answer in answers]
    finally:
        device.close()
        client.close()


def test_live_capture_on_loopback(modbus_server: int) -> None:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
    except (AttributeError, PermissionError) as exc:
        missing("AF_PACKET capture on lo", f"run as root or with CAP_NET_RAW ({exc})")
    modbus_port = modbus_server
    bacnet_port = free_udp_port()
    live_modbus = type("LiveModbus", (ModbusTcp,), {"ports": frozenset({modbus_port})})
    live_bacnet = type("LiveBacnet", (BacnetDissector,), {"ports": frozenset({bacnet_port})})
    learning = Detector(
        baseline=Baseline(),
        learn_frames=10**12,
        services={f"tcp/{modbus_port}": "modbus", f"udp/{bacnet_port}": "bacnet"},
    )
    live = LiveSensor(sensor=Sensor(dissectors=[live_modbus, live_bacnet]), detector=learning)
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    try:
        # The capture socket opens on the thread's first read; poke until it sees traffic.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
            wait_for(
                lambda: poke.sendto(b"x", ("127.0.0.1", 9)) > 0 and live.sensor.stats.packets > 0,
                "the sensor to start",
            )

        # Learning: the HMI polls the PLC and reads its identification.
        hmi = ModbusTcpClient(PLC, port=modbus_port, source_address=(HMI, 0))
        assert hmi.connect()  # type: ignore[no-untyped-call]
        for _ in range(3):
            assert not hmi.read_holding_registers(0, count=4).isError()
        assert not hmi.read_device_information().isError()
        hmi.close()  # type: ignore[no-untyped-call]

        answers = asyncio.run(who_is(bacnet_port, free_udp_port()))
        assert answers and answers[0][0][1] == DEVICE_INSTANCE  # type: ignore[index]

        def plc_identified() -> bool:
            plc = live.asset(PLC)
            return plc is not None and plc.vendor == "Sevenfold Test"

        wait_for(plc_identified, "the PLC's identity in the inventory")
        wait_for(lambda: live.asset(BACNET_DEVICE) is not None, "the BACnet device")
        wait_for(
            lambda: (
                (asset := live.asset(BACNET_DEVICE)) is not None
                and asset.device_instance == DEVICE_INSTANCE
            ),
            "the BACnet I-Am",
        )

        # Learning ends; an unknown client writes a register.
        live.switch(Detector(baseline=learning.baseline, services=learning.services))
        intruder = ModbusTcpClient(PLC, port=modbus_port, source_address=(INTRUDER, 0))
        assert intruder.connect()  # type: ignore[no-untyped-call]
        assert not intruder.write_register(7, 1234).isError()
        intruder.close()  # type: ignore[no-untyped-call]

        def intruder_alerts() -> set[str]:
            with live.lock:
                return {a.rule for a in live.raised if a.client and a.client.ip == INTRUDER}

        wait_for(lambda: {"write", "new-connection"} <= intruder_alerts(), "the write alert")
    finally:
        live.stop.set()
        thread.join(timeout=5)

    plc = live.asset(PLC)
    hmi_asset = live.asset(HMI)
    device = live.asset(BACNET_DEVICE)
    assert plc is not None and hmi_asset is not None and device is not None
    assert ("modbus", "server") in plc.roles and plc.purdue_level == 1
    assert (plc.vendor, plc.product, plc.firmware) == ("Sevenfold Test", "LIVE-1", "2.1")
    assert ("modbus", "client") in hmi_asset.roles and hmi_asset.purdue_level == 2
    assert device.device_instance == DEVICE_INSTANCE
    assert ("bacnet", "server") in device.roles
    with live.lock:
        (write,) = [
            a for a in live.raised if a.rule == "write" and a.client and a.client.ip == INTRUDER
        ]
        hmi_policy = [
            a for a in live.raised if a.client and a.client.ip == HMI and a.engine == "policy"
        ]
    assert (write.function, write.technique, write.protocol) == ("6", "T0836", "modbus")
    assert write.server is not None and write.server.port == modbus_port
    assert hmi_policy == [], "the learned HMI raised policy alerts"


def test_monitor_command_on_lo_with_a_custom_modbus_port(modbus_server: int) -> None:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
    except (AttributeError, PermissionError) as exc:
        missing("AF_PACKET capture on lo", f"run as root or with CAP_NET_RAW ({exc})")
    if not (DEFAULT_DIRECTORY / "oui.csv").is_file():
        missing("ieee-data", "apt-get install ieee-data")
    app = typer.Typer()
    app.command("monitor")(monitor_command)
    app.command("unused")(lambda: None)
    args = ["monitor", "--interface", "lo", "--duration", "3", "--json"]
    args += ["--port", f"modbus={modbus_server}", "--learn-packets", "0"]
    results: list[Result] = []
    thread = threading.Thread(target=lambda: results.append(CliRunner().invoke(app, args)))
    thread.start()
    client = ModbusTcpClient(PLC, port=modbus_server, source_address=(INTRUDER, 0))
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        if client.connect():  # type: ignore[no-untyped-call]
            client.write_register(3, 99)
            client.close()  # type: ignore[no-untyped-call]
        time.sleep(0.2)
    thread.join(timeout=DEADLINE)
    (result,) = results
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "interface:lo"
    (plc,) = [a for a in summary["assets"] if a["ip"] == PLC]
    assert plc["roles"]["modbus"] == ["server"]
    writes = [a for a in summary["alerts"] if a["rule"] == "write" and a["server"]["ip"] == PLC]
    assert writes and writes[0]["technique"] == "T0836"
