"""Asset inventory from the shared captures, checked against tshark's reading of the same frames."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from passive_monitor.inventory import Asset, Inventory, InventoryBuilder, InventoryFormatError
from passive_monitor.oui import DEFAULT_DIRECTORY, OuiListMissing, OuiRegistry
from passive_monitor.sensor import Sensor
from tests.components import shared_dir
from tests.passive_monitor.tshark_reference import tshark_fields
from tests.strict_mode import missing


@pytest.fixture(scope="module")
def oui() -> OuiRegistry:
    if not (DEFAULT_DIRECTORY / "oui.csv").is_file():
        missing("ieee-data", "apt-get install ieee-data")
    return OuiRegistry.load()


def inventory_of(name: str, oui: OuiRegistry | None = None) -> Inventory:
    builder = InventoryBuilder(oui=oui)
    for observation in Sensor().observe_file(shared_dir("pcaps") / name):
        builder.observe(observation)
    return builder.snapshot()


def test_oui_lookup_uses_the_ieee_list(oui: OuiRegistry) -> None:
    assert oui.vendor("08:61:95:12:34:56") == "Rockwell Automation"
    assert oui.vendor("08-00-06-AA-BB-CC") == "SIEMENS AG"
    assert oui.vendor("not a mac") is None


def test_finer_ieee_blocks_win_over_the_24_bit_block(tmp_path: Path) -> None:
    header = "Registry,Assignment,Organization Name,Organization Address\n"
    (tmp_path / "oui.csv").write_text(header + "MA-L,001122,Big Block Inc,Somewhere\n")
    (tmp_path / "mam.csv").write_text(header + "MA-M,0011223,Small Block Ltd,Elsewhere\n")
    registry = OuiRegistry.load(tmp_path)
    assert registry.vendor("00:11:22:3f:00:01") == "Small Block Ltd"
    assert registry.vendor("00:11:22:40:00:01") == "Big Block Inc"


def test_missing_oui_list_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OuiListMissing, match="ieee-data"):
        OuiRegistry.load(tmp_path)


def test_s7_identity_matches_tshark(oui: OuiRegistry) -> None:
    pcap = shared_dir("pcaps") / "s7comm" / "s7ident.pcap"
    reference = tshark_fields(
        pcap,
        display_filter="s7comm.szl.xy11.0001.anz || s7comm.szl.001c.0005.serialn",
        fields=["ip.src", "s7comm.szl.xy11.0001.anz", "s7comm.szl.001c.0005.serialn"],
    )
    orders = {v.strip() for f in reference.values() for v in f["s7comm.szl.xy11.0001.anz"]}
    serials = {v for f in reference.values() for v in f["s7comm.szl.001c.0005.serialn"]}
    plc_ip = next(iter({v for f in reference.values() for v in f["ip.src"]}))
    plc = inventory_of("s7comm/s7ident.pcap", oui).get(plc_ip)
    assert plc is not None
    assert plc.vendor == "Siemens"
    assert plc.product in orders
    assert plc.serial in serials
    assert plc.model == "CPU 315-2 PN/DP"
    # SZL 0x0011 index 7 (basic firmware): ausbg 0x5603, ausbe 0x0206 -> V3.2.6.
    assert plc.firmware == "V3.2.6"
    assert ("s7comm", "server") in plc.roles
    assert plc.purdue_level == 1


def test_modbus_device_identification_matches_tshark() -> None:
    pcap = shared_dir("pcaps") / "modbus" / "modbus_example.pcap"
    reference = tshark_fields(
        pcap,
        display_filter="modbus.object_str_value",
        fields=["ip.src", "modbus.object_id", "modbus.object_str_value"],
    )
    (frame,) = reference.values()
    objects = dict(zip(frame["modbus.object_id"], frame["modbus.object_str_value"], strict=True))
    server = inventory_of("modbus/modbus_example.pcap").get(frame["ip.src"][0])
    assert server is not None
    assert (server.vendor, server.product, server.firmware) == (
        objects["0"],
        objects["1"],
        objects["2"],
    )


def test_enip_list_identity_and_roles(oui: OuiRegistry) -> None:
    inventory = inventory_of("enip/enip_test.pcap", oui)
    adapter = inventory.get("10.1.1.164")
    scanner = inventory.get("10.1.1.167")
    assert adapter is not None and scanner is not None
    assert adapter.vendor == "Rockwell Automation/Allen-Bradley"
    assert adapter.product == "1756-ENBT/A"
    assert adapter.firmware == "4.03"
    assert adapter.serial == "0x00524d8e"
    assert adapter.roles == (("enip", "server"),)
    assert adapter.purdue_level == 1
    assert scanner.roles == (("enip", "client"),)
    assert scanner.purdue_level == 2
    assert scanner.mac_vendor == oui.vendor(scanner.macs[0])


def test_bacnet_i_am_device_instances_match_tshark() -> None:
    pcap = shared_dir("pcaps") / "bacnet" / "bacnet_example.pcap"
    reference = tshark_fields(
        pcap,
        display_filter="bacapp.unconfirmed_service == 0",
        fields=["ip.src", "bacapp.instance_number", "bacapp.vendor_identifier"],
    )
    expected = {
        f["ip.src"][0]: (int(f["bacapp.instance_number"][0]), int(f["bacapp.vendor_identifier"][0]))
        for f in reference.values()
    }
    inventory = inventory_of("bacnet/bacnet_example.pcap")
    seen = {
        a.ip: (a.device_instance, a.vendor)
        for a in inventory.assets
        if a.device_instance is not None
    }
    assert set(seen) == set(expected)
    for ip, (instance, vendor_id) in expected.items():
        assert seen[ip][0] == instance
        assert seen[ip][1] == f"BACnet vendor {vendor_id}"
    assert not any(a.ip.endswith(".255") for a in inventory.assets), "broadcast is not an asset"


def test_s7_plc_state_follows_stop_and_start() -> None:
    stopped = inventory_of("s7comm/step7_s300_stop.pcapng")
    assert [a.plc_state for a in stopped.assets if a.purdue_level == 1] == ["stop"]
    # snap7 stops the CPU (frame 57) and starts it again (PLC control P_PROGRAM, frame 63).
    restarted = inventory_of("s7comm/snap7.pcap")
    assert [a.plc_state for a in restarted.assets if a.purdue_level == 1] == ["run"]


def test_first_and_last_seen_span_the_capture() -> None:
    pcap = shared_dir("pcaps") / "dnp3" / "dnp3_example.pcap"
    reference = tshark_fields(pcap, display_filter="ip", fields=["frame.time_epoch"])
    times = [float(f["frame.time_epoch"][0]) for f in reference.values()]
    inventory = inventory_of("dnp3/dnp3_example.pcap")
    assert min(a.first_seen for a in inventory.assets) == pytest.approx(min(times))
    assert max(a.last_seen for a in inventory.assets) == pytest.approx(max(times))
    levels = {a.purdue_level for a in inventory.assets}
    assert levels == {1, 2}


def test_inventory_round_trips_through_an_atomic_file(tmp_path: Path, oui: OuiRegistry) -> None:
    inventory = inventory_of("s7comm/snap7.pcap", oui)
    path = tmp_path / "inventory.json"
    inventory.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert Inventory.load(path) == inventory
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON inventory"),
        ('{"format": "other"}', "not a sevenfold-passive-inventory file"),
        ('{"format": "sevenfold-passive-inventory", "version": 9}', "unsupported version"),
        ('{"format": "sevenfold-passive-inventory", "version": 1, "assets": {}}', "list"),
        (
            '{"format": "sevenfold-passive-inventory", "version": 1, "assets": [{"ip": 5}]}',
            "ip must be text",
        ),
        (
            '{"format": "sevenfold-passive-inventory", "version": 1,'
            ' "assets": [{"ip": "10.0.0.1", "purdue_level": "one"}]}',
            "purdue_level must be an integer",
        ),
    ],
)
def test_malformed_inventory_files_are_rejected(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(content)
    with pytest.raises(InventoryFormatError, match=message):
        Inventory.load(path)


def test_asset_json_shape_is_stable() -> None:
    asset = Asset(ip="10.0.0.5", roles=(("modbus", "server"),), purdue_level=1)
    data = asset.to_dict()
    assert data["roles"] == {"modbus": ["server"]}
    assert Asset.from_dict(json.loads(json.dumps(data))) == asset
