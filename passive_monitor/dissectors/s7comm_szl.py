"""S7 userdata PDUs and the system status lists (SZL) that identify a PLC.

Engineering tools and scanners read SZL 0x0011 (module identification: order
number, hardware and firmware versions) and SZL 0x001C (component
identification: station and module names, serial number). Passively reading
the answers is how an agentless monitor learns exactly which CPU and firmware
sits behind an address, without sending a single packet to it.
"""

from __future__ import annotations

from passive_monitor.dissectors.base import FieldValue
from passive_monitor.dissectors.cursor import Cursor

Fields = dict[str, FieldValue]

PUSH = 0
MODE_TRANSITION = 0
SUBFUNCTION = "s7comm.param.userdata.subfunc"
CPU_FUNCTIONS = 4
READ_SZL = 1
RESPONSE = 8
DATA_OK = 0xFF
HEADER_ONLY = 0x0F  # SZL ids 0x0Fxx ask for the record size and count alone
MODULE_ID = 0x11
COMPONENT_ID = 0x1C
MODULE_ID_RECORD = 28
ORDER_NUMBER = 20
COMPONENT_ID_RECORD = 34
COMPONENT_TEXT = 32
FIRMWARE_INDEX = 0x0007

# SZL 0x001C record index -> tshark field holding its text.
COMPONENT_TEXTS: dict[int, str] = {
    0x0001: "s7comm.szl.001c.0001.name",
    0x0002: "s7comm.szl.001c.0002.name",
    0x0003: "s7comm.szl.001c.0003.tag",
    0x0004: "s7comm.szl.001c.0004.copyright",
    0x0005: "s7comm.szl.001c.0005.serialn",
    0x0007: "s7comm.szl.001c.0007.cputypname",
    0x0008: "s7comm.szl.001c.0008.snmcmmc",
    0x000B: "s7comm.szl.001c.000b.loc_id",
}

# Summaries for the asset inventory; these names are ours, tshark has no equivalent.
IDENT_ORDER_NUMBER = "s7comm.ident.order_number"
IDENT_FIRMWARE = "s7comm.ident.firmware"
IDENT_SERIAL = "s7comm.ident.serial_number"
IDENT_MODULE = "s7comm.ident.module_name"


def userdata_header(param: Cursor, fields: Fields) -> tuple[int, int, int, int, bool]:
    """Userdata parameter head; returns type, function group, subfunction, unit ref, last.

    A PLC announces its own mode changes (RUN, STOP) in a shorter pushed head whose
    subfunction byte is the new mode, which is worth an alert of its own.
    """
    param.take(3)
    length = param.u8()
    param.u8()
    type_group = param.u8()
    kind, group = type_group >> 4, type_group & 0x0F
    subfunction = param.u8()
    fields["s7comm.param.userdata.type"] = kind
    fields["s7comm.param.userdata.funcgroup"] = group
    mode_transition = (kind, group) == (PUSH, MODE_TRANSITION)
    subfunction_name = "s7comm.param.modetrans.subfunc" if mode_transition else SUBFUNCTION
    fields[subfunction_name] = subfunction
    fields["s7comm.param.userdata.seq_num"] = param.u8()
    unit, last = 0, True
    if length >= 8 and not mode_transition:
        unit = param.u8()
        last = param.u8() == 0
        fields["s7comm.param.userdata.dataunitref"] = unit
        fields["s7comm.param.userdata.lastdataunit"] = 0 if last else 1
    return kind, group, subfunction, unit, last


def userdata_payload(data: Cursor, fields: Fields) -> bytes | None:
    """Data head of a userdata PDU; returns its payload when the return code says it holds one."""
    code = data.u8()
    fields["s7comm.data.returncode"] = code
    data.u8()
    length = data.u16()
    if code != DATA_OK:
        return None
    return data.take(min(length, data.remaining))


def szl_request(payload: bytes, fields: Fields) -> None:
    request = Cursor(payload)
    fields["s7comm.data.userdata.szl_id"] = request.u16()
    fields["s7comm.data.userdata.szl_index"] = request.u16()


def szl_response(payload: bytes, fields: Fields) -> None:
    """A complete (reassembled) SZL partial list."""
    answer = Cursor(payload)
    szl_id = answer.u16()
    fields["s7comm.data.userdata.szl_id"] = szl_id
    fields["s7comm.data.userdata.szl_index"] = answer.u16()
    record_length = answer.u16()
    count = answer.u16()
    if szl_id >> 8 == HEADER_ONLY:
        return
    records = [answer.take(record_length) for _ in range(count)]
    if szl_id & 0xFF == MODULE_ID and record_length == MODULE_ID_RECORD:
        _module_identification(records, fields)
    elif szl_id & 0xFF == COMPONENT_ID and record_length == COMPONENT_ID_RECORD:
        _component_identification(records, fields)


def _module_identification(records: list[bytes], fields: Fields) -> None:
    indexes: list[int] = []
    orders: list[str] = []
    types: list[int] = []
    version1: list[int] = []
    version2: list[int] = []
    for raw in records:
        record = Cursor(raw)
        index = record.u16()
        order = record.take(ORDER_NUMBER).decode("latin-1")
        indexes.append(index)
        orders.append(order)
        types.append(record.u16())
        version1.append(record.u16())
        version2.append(record.u16())
        if index == 1 and order.strip():
            fields[IDENT_ORDER_NUMBER] = order.strip()
        if index == FIRMWARE_INDEX:
            major, minor, patch = version1[-1] & 0xFF, version2[-1] >> 8, version2[-1] & 0xFF
            fields[IDENT_FIRMWARE] = f"V{major}.{minor}.{patch}"
    fields["s7comm.szl.xy11.0001.index"] = tuple(indexes)
    fields["s7comm.szl.xy11.0001.anz"] = tuple(orders)
    fields["s7comm.szl.xy11.0001.bgtyp"] = tuple(types)
    fields["s7comm.szl.xy11.0001.ausbg"] = tuple(version1)
    fields["s7comm.szl.xy11.0001.ausbe"] = tuple(version2)


def _component_identification(records: list[bytes], fields: Fields) -> None:
    indexes: list[int] = []
    for raw in records:
        record = Cursor(raw)
        index = record.u16()
        indexes.append(index)
        name = COMPONENT_TEXTS.get(index)
        if name is not None:
            fields[name] = record.text(COMPONENT_TEXT)
    fields["s7comm.szl.001c.000x.index"] = tuple(indexes)
    serial = fields.get("s7comm.szl.001c.0005.serialn")
    if isinstance(serial, str) and serial:
        fields[IDENT_SERIAL] = serial
    module = fields.get("s7comm.szl.001c.0002.name")
    if isinstance(module, str) and module:
        fields[IDENT_MODULE] = module
