"""The asset inventory built from what the sensor sees, without ever querying a device.

Legacy controllers cannot run an agent and often must not be scanned, so the
inventory is assembled from traffic alone: addresses and MAC vendors from every
conversation, the role each host plays per protocol, and vendor, product,
firmware and serial from the identity answers engineering tools and masters
already ask for (Modbus 43/14, S7 SZL, EtherNet/IP ListIdentity, BACnet I-Am).
Assets are keyed by IP address: behind a router many addresses share the
router's MAC, so MACs are listed per asset rather than used as identity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from passive_monitor.alerts.addresses import is_host
from passive_monitor.alerts.fields import Fields, first_int, first_str, ints, strs
from passive_monitor.dissectors.base import Message
from passive_monitor.flows import Endpoint
from passive_monitor.oui import OuiRegistry
from passive_monitor.sensor import Observation

FORMAT = "sevenfold-passive-inventory"
VERSION = 1
MAX_MACS = 8
MAX_SERVICES = 32

# Protocols whose servers are field devices (controllers, RTUs, outstations).
ICS_PROTOCOLS = frozenset({"modbus", "dnp3", "bacnet", "s7comm", "enip", "cipio", "iec104"})

# A few BACnet vendor identifiers (ASHRAE registry) common in building automation.
BACNET_VENDORS = {
    2: "The Trane Company",
    5: "Johnson Controls",
    7: "Siemens Schweiz AG",
    8: "Delta Controls",
    10: "Schneider Electric",
    17: "Honeywell",
    24: "Automated Logic Corporation",
    36: "Tridium",
}
# CIP vendor identifiers (ODVA registry) for the most common controller makers.
CIP_VENDORS = {1: "Rockwell Automation/Allen-Bradley", 47: "Omron"}

# Modbus 43/14 object ids -> inventory attribute.
_MODBUS_OBJECTS = {0: "vendor", 1: "product", 2: "firmware", 4: "model", 5: "model"}

# S7 mode-transition announcements (new mode pushed by the CPU).
_S7_MODES = {0: "stop", 1: "startup", 2: "run", 3: "startup", 4: "hold", 6: "startup"}
_CIP_STATES = {0: "nonexistent", 1: "self-test", 2: "standby", 3: "operational"}


class InventoryFormatError(SevenfoldError):
    """An inventory file is not one this version wrote."""

    code = "bad-inventory"


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """One host as the traffic describes it; every attribute is None until observed."""

    ip: str
    macs: tuple[str, ...] = ()
    mac_vendor: str | None = None
    roles: tuple[tuple[str, str], ...] = ()
    services: tuple[str, ...] = ()
    vendor: str | None = None
    product: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    name: str | None = None
    device_instance: int | None = None
    plc_state: str | None = None
    purdue_level: int | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(sorted({protocol for protocol, _ in self.roles}))

    def to_dict(self) -> dict[str, Any]:
        roles: dict[str, list[str]] = {}
        for protocol, role in self.roles:
            roles.setdefault(protocol, []).append(role)
        return {
            "ip": self.ip,
            "macs": list(self.macs),
            "mac_vendor": self.mac_vendor,
            "roles": roles,
            "services": list(self.services),
            "vendor": self.vendor,
            "product": self.product,
            "model": self.model,
            "firmware": self.firmware,
            "serial": self.serial,
            "name": self.name,
            "device_instance": self.device_instance,
            "plc_state": self.plc_state,
            "purdue_level": self.purdue_level,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_dict(cls, data: object) -> Asset:
        if not isinstance(data, dict):
            raise InventoryFormatError("each asset must be a JSON object")
        try:
            roles_in = data.get("roles", {})
            if not isinstance(roles_in, dict):
                raise InventoryFormatError("roles must be an object")
            roles = tuple(
                sorted(
                    (str(protocol), str(role)) for protocol, rs in roles_in.items() for role in rs
                )
            )
            return cls(
                ip=_text(data["ip"], "ip"),
                macs=tuple(_text(m, "macs") for m in data.get("macs", [])),
                mac_vendor=_optional_text(data.get("mac_vendor"), "mac_vendor"),
                roles=roles,
                services=tuple(_text(s, "services") for s in data.get("services", [])),
                vendor=_optional_text(data.get("vendor"), "vendor"),
                product=_optional_text(data.get("product"), "product"),
                model=_optional_text(data.get("model"), "model"),
                firmware=_optional_text(data.get("firmware"), "firmware"),
                serial=_optional_text(data.get("serial"), "serial"),
                name=_optional_text(data.get("name"), "name"),
                device_instance=_optional_int(data.get("device_instance"), "device_instance"),
                plc_state=_optional_text(data.get("plc_state"), "plc_state"),
                purdue_level=_optional_int(data.get("purdue_level"), "purdue_level"),
                first_seen=float(data.get("first_seen", 0.0)),
                last_seen=float(data.get("last_seen", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InventoryFormatError(f"asset {data.get('ip')!r}: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """A snapshot of every asset, ordered by address."""

    assets: tuple[Asset, ...]

    def get(self, ip: str) -> Asset | None:
        return next((asset for asset in self.assets if asset.ip == ip), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "assets": [asset.to_dict() for asset in self.assets],
        }

    def save(self, path: Path) -> None:
        """Atomic, so a reader (``assets list``) never sees half an inventory."""
        data = json.dumps(self.to_json(), indent=1, sort_keys=True).encode() + b"\n"
        write_atomic(path, data, mode=0o644)

    @classmethod
    def load(cls, path: Path) -> Inventory:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InventoryFormatError(f"{path}: not a JSON inventory ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InventoryFormatError(f"{path}: not a {FORMAT} file")
        if data.get("version") != VERSION:
            raise InventoryFormatError(f"{path}: unsupported version {data.get('version')!r}")
        assets = data.get("assets")
        if not isinstance(assets, list):
            raise InventoryFormatError(f"{path}: assets must be a list")
        return cls(assets=tuple(Asset.from_dict(item) for item in assets))


@dataclass(slots=True)
class _Draft:
    """Mutable per-host state while observations arrive."""

    ip: str
    first_seen: float
    last_seen: float
    macs: list[str] = field(default_factory=list)
    roles: set[tuple[str, str]] = field(default_factory=set)
    services: list[str] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)
    device_instance: int | None = None
    plc_state: str | None = None
    pending_state: str | None = None


class InventoryBuilder:
    """Accumulates assets from observations; ``snapshot`` freezes the current view."""

    __slots__ = ("_drafts", "_oui")

    def __init__(self, *, oui: OuiRegistry | None = None) -> None:
        self._oui = oui
        self._drafts: dict[str, _Draft] = {}

    def _draft(self, endpoint: Endpoint, ts: float, transport: str) -> _Draft | None:
        draft = self._drafts.get(endpoint.ip)
        if draft is None:
            if not is_host(endpoint.ip, transport=transport):
                return None
            draft = _Draft(ip=endpoint.ip, first_seen=ts, last_seen=ts)
            self._drafts[endpoint.ip] = draft
        elif ts > draft.last_seen:
            draft.last_seen = ts
        elif ts < draft.first_seen:
            draft.first_seen = ts
        mac = endpoint.mac
        if mac and mac not in draft.macs and len(draft.macs) < MAX_MACS:
            draft.macs.append(mac)
        return draft

    def observe(self, observation: Observation) -> None:
        """Fold one observation into the inventory."""
        if not observation.client.ip:
            return
        transport = observation.transport
        client = self._draft(observation.client, observation.ts, transport)
        server = self._draft(observation.server, observation.ts, transport)
        if server is not None and observation.kind == "connection":
            service = f"{transport}/{observation.server.port}"
            if service not in server.services and len(server.services) < MAX_SERVICES:
                server.services.append(service)
        message = observation.message
        if message is None:
            return
        protocol = message.protocol
        if protocol == "bacnet" and first_int(message.fields, "bacapp.unconfirmed_service") in (
            0,
            1,
        ):
            # I-Am / I-Have: the sender is the device announcing itself. BACnet
            # marks every unconfirmed service as a request whatever its
            # direction, so the flow decides: a broadcast I-Am was sent by the
            # flow's client, a unicast one answers the client's Who-Is.
            sender = client if server is None else server
            if sender is not None:
                sender.roles.add((protocol, "server"))
                _bacnet_identity(sender, message.fields)
            return
        if client is not None:
            client.roles.add((protocol, "client"))
        if server is not None:
            server.roles.add((protocol, "server"))
            _identity(server, message)

    def snapshot(self) -> Inventory:
        return Inventory(
            assets=tuple(self._asset(self._drafts[ip]) for ip in sorted(self._drafts, key=_ip_key))
        )

    def _asset(self, draft: _Draft) -> Asset:
        mac_vendor = None
        if self._oui is not None and draft.macs:
            mac_vendor = self._oui.vendor(draft.macs[0])
        ident = draft.identity
        return Asset(
            ip=draft.ip,
            macs=tuple(draft.macs),
            mac_vendor=mac_vendor,
            roles=tuple(sorted(draft.roles)),
            services=tuple(sorted(draft.services)),
            vendor=ident.get("vendor"),
            product=ident.get("product"),
            model=ident.get("model"),
            firmware=ident.get("firmware"),
            serial=ident.get("serial"),
            name=ident.get("name"),
            device_instance=draft.device_instance,
            plc_state=draft.plc_state,
            purdue_level=_purdue_level(draft.roles),
            first_seen=draft.first_seen,
            last_seen=draft.last_seen,
        )


def _purdue_level(roles: set[tuple[str, str]]) -> int | None:
    """Field devices answer ICS protocols (level 1); their masters supervise them (level 2)."""
    ics = {role for protocol, role in roles if protocol in ICS_PROTOCOLS}
    if "server" in ics:
        return 1
    if "client" in ics:
        return 2
    return None


def _identity(draft: _Draft, message: Message) -> None:
    fields = message.fields
    protocol = message.protocol
    if protocol == "modbus":
        _modbus_identity(draft, message)
    elif protocol == "s7comm":
        _s7_identity(draft, message)
    elif protocol == "enip" and message.is_request is False:
        _enip_identity(draft, fields)


def _set(draft: _Draft, key: str, value: str | None) -> None:
    if value:
        draft.identity[key] = value


def _modbus_identity(draft: _Draft, message: Message) -> None:
    fields = message.fields
    if message.is_request is not False or first_int(fields, "modbus.func_code") != 43:
        return
    for object_id, value in zip(
        ints(fields, "modbus.object_id"), strs(fields, "modbus.object_str_value"), strict=False
    ):
        key = _MODBUS_OBJECTS.get(object_id)
        if key is not None:
            _set(draft, key, value)


def _s7_identity(draft: _Draft, message: Message) -> None:
    fields = message.fields
    order = first_str(fields, "s7comm.ident.order_number")
    module = first_str(fields, "s7comm.ident.module_name")
    if order or module:
        _set(draft, "vendor", "Siemens")
    _set(draft, "product", order)
    _set(draft, "model", module)
    _set(draft, "firmware", first_str(fields, "s7comm.ident.firmware"))
    _set(draft, "serial", first_str(fields, "s7comm.ident.serial_number"))
    _set(draft, "name", first_str(fields, "s7comm.szl.001c.0001.name"))
    announced = first_int(fields, "s7comm.param.modetrans.subfunc")
    if announced is not None and announced in _S7_MODES:
        draft.plc_state = _S7_MODES[announced]
        return
    rosctr = first_int(fields, "s7comm.header.rosctr")
    func = first_int(fields, "s7comm.param.func")
    if rosctr == 1 and func == 0x29:
        draft.pending_state = "stop"
    elif rosctr == 1 and func == 0x28:
        service = first_str(fields, "s7comm.param.pistart.servicename")
        draft.pending_state = "run" if service == "P_PROGRAM" else None
    elif rosctr == 3 and func in (0x28, 0x29) and draft.pending_state is not None:
        if (first_int(fields, "s7comm.header.errcls") or 0) == 0:
            draft.plc_state = draft.pending_state
        draft.pending_state = None


def _enip_identity(draft: _Draft, fields: Fields) -> None:
    vendor_id = first_int(fields, "enip.lir.vendor")
    if vendor_id is None:
        return
    _set(draft, "vendor", CIP_VENDORS.get(vendor_id, f"CIP vendor {vendor_id}"))
    _set(draft, "product", first_str(fields, "enip.lir.name"))
    code = first_int(fields, "enip.lir.prodcode")
    _set(draft, "model", None if code is None else f"product code {code}")
    revision = fields.get("enip.lir.revision")
    if isinstance(revision, str):
        _set(draft, "firmware", revision)
    elif isinstance(revision, int) and not isinstance(revision, bool):
        _set(draft, "firmware", f"{revision >> 8}.{revision & 0xFF:02d}")
    serial = first_int(fields, "enip.lir.serial")
    _set(draft, "serial", None if serial is None else f"0x{serial:08x}")
    state = first_int(fields, "enip.lir.state")
    if state is not None and state in _CIP_STATES:
        draft.plc_state = _CIP_STATES[state]


def _bacnet_identity(draft: _Draft, fields: Fields) -> None:
    instance = first_int(fields, "bacapp.instance_number")
    if instance is not None:
        draft.device_instance = instance
    vendor_id = first_int(fields, "bacapp.vendor_identifier")
    if vendor_id is not None:
        _set(draft, "vendor", BACNET_VENDORS.get(vendor_id, f"BACnet vendor {vendor_id}"))


def _ip_key(ip: str) -> tuple[int, str]:
    parts = ip.split(".")
    if len(parts) == 4 and all(part.isdigit() for part in parts):
        return (4, ".".join(f"{int(part):03d}" for part in parts))
    return (6, ip)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InventoryFormatError(f"{name} must be text")
    return value


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _optional_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InventoryFormatError(f"{name} must be an integer")
    return value
