"""What a request asks a controller to do, independent of the protocol that carries it.

The baseline remembers *functions* (a stable key per protocol operation) and the
rules react to *categories*: a register write, an S7 write var, a DNP3 operate and
an IEC 104 set-point all change the process and deserve the same scrutiny, so
the per-protocol knowledge lives here once and the rules stay protocol-blind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from passive_monitor.alerts.attack import (
    CHANGE_OPERATING_MODE,
    DENIAL_OF_SERVICE,
    DEVICE_RESTART_SHUTDOWN,
    MODIFY_PARAMETER,
    PROGRAM_DOWNLOAD,
    PROGRAM_UPLOAD,
    REMOTE_SYSTEM_DISCOVERY,
    REMOTE_SYSTEM_INFORMATION_DISCOVERY,
    SERVICE_STOP,
    UNAUTHORIZED_COMMAND_MESSAGE,
)
from passive_monitor.alerts.fields import Fields, first_int, first_str, ints
from passive_monitor.dissectors.base import Message

Category = Literal[
    "read",
    "write",
    "command",
    "program_download",
    "program_upload",
    "mode_change",
    "restart",
    "file",
    "identity",
    "discovery",
    "other",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """One request's meaning: the baseline key, a label for people, and the ATT&CK fit."""

    function: str
    label: str
    category: Category
    technique: str | None = None


Entry = tuple[str, Category, str | None]


def _entry(entry: Entry | None, fallback: str) -> Entry:
    return entry if entry is not None else (fallback, "other", None)


@functools.lru_cache(maxsize=4096)
def _activity(
    function: str, label: str, category: Category, technique: str | None = None
) -> Activity:
    """Shared instances: every polled request of one kind means the same thing."""
    return Activity(function=function, label=label, category=category, technique=technique)


_MODBUS: dict[int, Entry] = {
    1: ("Read Coils", "read", None),
    2: ("Read Discrete Inputs", "read", None),
    3: ("Read Holding Registers", "read", None),
    4: ("Read Input Registers", "read", None),
    5: ("Write Single Coil", "write", UNAUTHORIZED_COMMAND_MESSAGE),
    6: ("Write Single Register", "write", MODIFY_PARAMETER),
    7: ("Read Exception Status", "read", None),
    8: ("Diagnostics", "other", None),
    11: ("Get Comm Event Counter", "read", None),
    12: ("Get Comm Event Log", "read", None),
    15: ("Write Multiple Coils", "write", UNAUTHORIZED_COMMAND_MESSAGE),
    16: ("Write Multiple Registers", "write", MODIFY_PARAMETER),
    17: ("Report Server ID", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    20: ("Read File Record", "file", None),
    21: ("Write File Record", "file", None),
    22: ("Mask Write Register", "write", MODIFY_PARAMETER),
    23: ("Read/Write Multiple Registers", "write", MODIFY_PARAMETER),
    24: ("Read FIFO Queue", "read", None),
}

# Schneider UMAS (function 90) sub-functions; "download" is engineering
# station to PLC, "upload" the reverse, as in Schneider's own tools.
_UMAS: dict[int, Entry] = {
    0x30: ("UMAS Initialize Download", "program_download", PROGRAM_DOWNLOAD),
    0x31: ("UMAS Download Block", "program_download", PROGRAM_DOWNLOAD),
    0x32: ("UMAS End Download", "program_download", PROGRAM_DOWNLOAD),
    0x33: ("UMAS Initialize Upload", "program_upload", PROGRAM_UPLOAD),
    0x34: ("UMAS Upload Block", "program_upload", PROGRAM_UPLOAD),
    0x35: ("UMAS End Upload", "program_upload", PROGRAM_UPLOAD),
    0x40: ("UMAS Start PLC", "mode_change", CHANGE_OPERATING_MODE),
    0x41: ("UMAS Stop PLC", "mode_change", CHANGE_OPERATING_MODE),
    0x23: ("UMAS Write Variables", "write", MODIFY_PARAMETER),
    0x25: ("UMAS Write Coils/Registers", "write", MODIFY_PARAMETER),
    0x02: ("UMAS Read ID", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    0x03: ("UMAS Read Project Info", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    0x04: ("UMAS Read PLC Info", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
}

_UMAS_SUBFUNCTION_FIELDS = ("modbus.umas.func", "umas.func_code", "modbus.umas.func_code")


def _modbus(fields: Fields) -> Activity | None:
    code = first_int(fields, "modbus.func_code")
    if code is None:
        return None
    code &= 0x7F
    if code == 43 and first_int(fields, "modbus.mei") in (None, 14):
        return _activity(
            "43/14", "Read Device Identification", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY
        )
    if code == 8:
        sub = first_int(fields, "modbus.diagnostic_code")
        if sub == 1:
            return _activity(
                "8/1", "Restart Communications Option", "restart", DEVICE_RESTART_SHUTDOWN
            )
        if sub == 4:
            return _activity("8/4", "Force Listen Only Mode", "command", DENIAL_OF_SERVICE)
    if code == 90:
        for name in _UMAS_SUBFUNCTION_FIELDS:
            sub = first_int(fields, name)
            if sub is not None:
                label, category, technique = _entry(_UMAS.get(sub), f"UMAS 0x{sub:02x}")
                return _activity(f"90/0x{sub:02x}", label, category, technique)
        return _activity("90", "UMAS", "other")
    label, category, technique = _entry(_MODBUS.get(code), f"Function {code}")
    return _activity(str(code), label, category, technique)


_DNP3: dict[int, Entry] = {
    0: ("Confirm", "other", None),
    1: ("Read", "read", None),
    2: ("Write", "write", MODIFY_PARAMETER),
    3: ("Select", "command", UNAUTHORIZED_COMMAND_MESSAGE),
    4: ("Operate", "command", UNAUTHORIZED_COMMAND_MESSAGE),
    5: ("Direct Operate", "command", UNAUTHORIZED_COMMAND_MESSAGE),
    6: ("Direct Operate No Ack", "command", UNAUTHORIZED_COMMAND_MESSAGE),
    13: ("Cold Restart", "restart", DEVICE_RESTART_SHUTDOWN),
    14: ("Warm Restart", "restart", DEVICE_RESTART_SHUTDOWN),
    17: ("Start Application", "mode_change", None),
    18: ("Stop Application", "mode_change", SERVICE_STOP),
    25: ("Open File", "file", None),
    26: ("Close File", "file", None),
    27: ("Delete File", "file", None),
    28: ("Get File Info", "file", None),
    29: ("Authenticate File", "file", None),
    30: ("Abort File", "file", None),
}
_DNP3_FILE_GROUP = 70


def _dnp3(fields: Fields) -> Activity | None:
    code = first_int(fields, "dnp3.al.func")
    if code is None:
        return None
    label, category, technique = _entry(_DNP3.get(code), f"Function {code}")
    if category in ("read", "write") and any(
        obj >> 8 == _DNP3_FILE_GROUP for obj in ints(fields, "dnp3.al.obj")
    ):
        label, category, technique = f"{label} (file object)", "file", None
    return _activity(str(code), label, category, technique)


_BACNET_CONFIRMED: dict[int, Entry] = {
    6: ("AtomicReadFile", "file", None),
    7: ("AtomicWriteFile", "file", None),
    10: ("CreateObject", "write", MODIFY_PARAMETER),
    11: ("DeleteObject", "write", MODIFY_PARAMETER),
    12: ("ReadProperty", "read", None),
    14: ("ReadPropertyMultiple", "read", None),
    15: ("WriteProperty", "write", MODIFY_PARAMETER),
    16: ("WritePropertyMultiple", "write", MODIFY_PARAMETER),
    17: ("DeviceCommunicationControl", "command", DENIAL_OF_SERVICE),
    20: ("ReinitializeDevice", "restart", DEVICE_RESTART_SHUTDOWN),
}
_BACNET_UNCONFIRMED: dict[int, Entry] = {
    0: ("I-Am", "identity", None),
    1: ("I-Have", "identity", None),
    7: ("Who-Has", "discovery", REMOTE_SYSTEM_DISCOVERY),
    8: ("Who-Is", "discovery", REMOTE_SYSTEM_DISCOVERY),
}


def _bacnet(fields: Fields) -> Activity | None:
    confirmed = first_int(fields, "bacapp.confirmed_service")
    if confirmed is not None:
        label, category, technique = _entry(
            _BACNET_CONFIRMED.get(confirmed), f"Confirmed service {confirmed}"
        )
        return _activity(f"c{confirmed}", label, category, technique)
    unconfirmed = first_int(fields, "bacapp.unconfirmed_service")
    if unconfirmed is not None:
        label, category, technique = _entry(
            _BACNET_UNCONFIRMED.get(unconfirmed), f"Unconfirmed service {unconfirmed}"
        )
        return _activity(f"u{unconfirmed}", label, category, technique)
    return None


_S7_JOB: dict[int, Entry] = {
    0x04: ("Read Var", "read", None),
    0x05: ("Write Var", "write", MODIFY_PARAMETER),
    0xF0: ("Setup Communication", "other", None),
    0x1A: ("Request Download", "program_download", PROGRAM_DOWNLOAD),
    0x1B: ("Download Block", "program_download", PROGRAM_DOWNLOAD),
    0x1C: ("Download Ended", "program_download", PROGRAM_DOWNLOAD),
    0x1D: ("Start Upload", "program_upload", PROGRAM_UPLOAD),
    0x1E: ("Upload", "program_upload", PROGRAM_UPLOAD),
    0x1F: ("End Upload", "program_upload", PROGRAM_UPLOAD),
    0x29: ("PLC Stop", "mode_change", CHANGE_OPERATING_MODE),
}
# PI services of the PLC-control job (0x28) that matter: start and block insert/delete.
_S7_PI: dict[str, Entry] = {
    "P_PROGRAM": ("PLC Control: Start", "mode_change", CHANGE_OPERATING_MODE),
    "_INSE": ("PLC Control: Insert Block", "program_download", PROGRAM_DOWNLOAD),
    "_DELE": ("PLC Control: Delete Block", "program_download", None),
}
_S7_USERDATA: dict[tuple[int, int], Entry] = {
    (4, 1): ("Read SZL", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    (3, 1): ("List Blocks", "read", None),
    (3, 2): ("List Blocks Of Type", "read", None),
    (3, 3): ("Get Block Info", "read", None),
    (7, 1): ("Read Clock", "read", None),
    (7, 2): ("Set Clock", "write", MODIFY_PARAMETER),
}


def _s7comm(fields: Fields) -> Activity | None:
    rosctr = first_int(fields, "s7comm.header.rosctr")
    if rosctr == 1:
        func = first_int(fields, "s7comm.param.func")
        if func is None:
            return None
        if func == 0x28:
            service = first_str(fields, "s7comm.param.pistart.servicename") or "?"
            label, category, technique = _entry(_S7_PI.get(service), f"PLC Control: {service}")
            return _activity(f"job/0x28/{service}", label, category, technique)
        label, category, technique = _entry(_S7_JOB.get(func), f"Job 0x{func:02x}")
        return _activity(f"job/0x{func:02x}", label, category, technique)
    if rosctr == 7:
        group = first_int(fields, "s7comm.param.userdata.funcgroup")
        sub = first_int(fields, "s7comm.param.userdata.subfunc")
        if group is None or sub is None:
            return None
        label, category, technique = _entry(
            _S7_USERDATA.get((group, sub)), f"Userdata {group}/{sub}"
        )
        return _activity(f"ud/{group}/{sub}", label, category, technique)
    return None


_ENIP_COMMANDS: dict[int, Entry] = {
    0x04: ("ListServices", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    0x63: ("ListIdentity", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    0x64: ("ListInterfaces", "identity", REMOTE_SYSTEM_INFORMATION_DISCOVERY),
    0x65: ("RegisterSession", "other", None),
    0x66: ("UnRegisterSession", "other", None),
}
_CIP_SERVICES: dict[int, Entry] = {
    0x01: ("Get Attributes All", "read", None),
    0x02: ("Set Attributes All", "write", MODIFY_PARAMETER),
    0x03: ("Get Attribute List", "read", None),
    0x04: ("Set Attribute List", "write", MODIFY_PARAMETER),
    0x05: ("Reset", "restart", DEVICE_RESTART_SHUTDOWN),
    0x06: ("Start", "mode_change", CHANGE_OPERATING_MODE),
    0x07: ("Stop", "mode_change", CHANGE_OPERATING_MODE),
    0x0E: ("Get Attribute Single", "read", None),
    0x10: ("Set Attribute Single", "write", MODIFY_PARAMETER),
    0x4C: ("Read Tag", "read", None),
    0x4D: ("Write Tag", "write", MODIFY_PARAMETER),
    0x4E: ("Read Modify Write Tag", "write", MODIFY_PARAMETER),
    0x52: ("Read Tag Fragmented", "read", None),
    0x53: ("Write Tag Fragmented", "write", MODIFY_PARAMETER),
}


def _enip(fields: Fields) -> Activity | None:
    service = first_int(fields, "cip.sc")
    if service is not None:
        label, category, technique = _entry(
            _CIP_SERVICES.get(service & 0x7F), f"CIP service 0x{service & 0x7F:02x}"
        )
        return _activity(f"cip/0x{service & 0x7F:02x}", label, category, technique)
    command = first_int(fields, "enip.command")
    if command is None:
        return None
    label, category, technique = _entry(_ENIP_COMMANDS.get(command), f"Command 0x{command:02x}")
    return _activity(f"enip/0x{command:02x}", label, category, technique)


def _iec104(fields: Fields) -> Activity | None:
    typeid = first_int(fields, "iec60870_asdu.typeid")
    if typeid is None:
        return None
    function = str(typeid)
    if 45 <= typeid <= 64:
        return _activity(
            function, f"Command type {typeid}", "command", UNAUTHORIZED_COMMAND_MESSAGE
        )
    if 110 <= typeid <= 113:
        return _activity(function, f"Parameter type {typeid}", "write", MODIFY_PARAMETER)
    if typeid == 105:
        return _activity(function, "Reset Process", "restart", DEVICE_RESTART_SHUTDOWN)
    if 120 <= typeid <= 127:
        return _activity(function, f"File transfer type {typeid}", "file")
    if typeid in (100, 101, 102):
        return _activity(function, f"Interrogation type {typeid}", "read")
    return _activity(function, f"Type {typeid}", "other")


_CLASSIFIERS: dict[str, Callable[[Fields], Activity | None]] = {
    "modbus": _modbus,
    "dnp3": _dnp3,
    "bacnet": _bacnet,
    "s7comm": _s7comm,
    "enip": _enip,
    "iec104": _iec104,
}


def classify(message: Message) -> Activity | None:
    """The activity a request carries; None for responses and unrecognised PDUs."""
    if message.is_request is False:
        return None
    classifier = _CLASSIFIERS.get(message.protocol)
    return classifier(message.fields) if classifier is not None else None
