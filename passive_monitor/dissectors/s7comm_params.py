"""Parameter and data parts of S7 job and acknowledgement PDUs.

These are the operations an attacker uses against a PLC (Stuxnet-style block
download, PLC stop, memory writes), so the fields an alert rule needs are pulled
out: variable addresses, block types and numbers, PI service names.
"""

from __future__ import annotations

from passive_monitor.dissectors.base import FieldValue
from passive_monitor.dissectors.cursor import Cursor

Fields = dict[str, FieldValue]

SETUP = 0xF0
READ_VAR = 0x04
WRITE_VAR = 0x05
BLOCK_CONTROL = frozenset({0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F})
PI_SERVICE = 0x28
PLC_STOP = 0x29
ANY_POINTER = 0x10
SUCCESS = 0xFF
BLOCK_FILENAME = 9

# Data transport sizes whose length field counts bits rather than bytes.
LENGTH_IN_BITS = frozenset({0x03, 0x04, 0x05})


def _append(fields: Fields, name: str, value: int) -> None:
    """Repeated items become tuples, the shape tshark gives a field seen several times."""
    previous = fields.get(name)
    if isinstance(previous, int):
        fields[name] = (previous, value)
    elif isinstance(previous, tuple) and all(isinstance(item, int) for item in previous):
        fields[name] = (*(int(item) for item in previous), value)
    else:
        fields[name] = value


def _append_text(fields: Fields, name: str, value: str) -> None:
    previous = fields.get(name)
    if isinstance(previous, str):
        fields[name] = (previous, value)
    elif isinstance(previous, tuple):
        fields[name] = (*(str(item) for item in previous), value)
    else:
        fields[name] = value


def _block_parts(name: str, fields: Fields) -> None:
    """An 8-character block name: type, number, destination file system (`0B00001P`)."""
    _append_text(fields, "s7comm.data.blockcontrol.block_type", name[0:2])
    _append_text(fields, "s7comm.data.blockcontrol.block_number", name[2:7])
    _append_text(fields, "s7comm.data.blockcontrol.dest_filesys", name[7])


def _block_name(name: str, fields: Fields) -> None:
    """Upload/download file names put a file identifier (`_`) before the block name."""
    if len(name) != BLOCK_FILENAME:
        return
    _append_text(fields, "s7comm.data.blockcontrol.file_identifier", name[0])
    _block_parts(name[1:], fields)


def _var_items(param: Cursor, count: int, fields: Fields) -> None:
    for _ in range(count):
        _append(fields, "s7comm.param.item.varspec", param.u8())
        spec_length = param.u8()
        spec = Cursor(param.take(spec_length))
        syntax = spec.u8()
        _append(fields, "s7comm.param.item.syntaxid", syntax)
        if syntax != ANY_POINTER:
            continue
        _append(fields, "s7comm.param.item.transp_size", spec.u8())
        _append(fields, "s7comm.param.item.length", spec.u16())
        _append(fields, "s7comm.param.item.db", spec.u16())
        _append(fields, "s7comm.param.item.area", spec.u8())
        _append(fields, "s7comm.param.item.address", spec.uint(3))


def _data_items(data: Cursor, count: int, fields: Fields, *, answer: bool) -> None:
    """Value items of a write request or read response; each is padded to an even length.

    In an answer only a success return code is followed by a value.
    """
    for index in range(count):
        code = data.u8()
        _append(fields, "s7comm.data.returncode", code)
        if data.remaining < 3:
            return
        if answer and code != SUCCESS:
            data.take(3)
            continue
        size = data.u8()
        length = data.u16()
        nbytes = (length + 7) // 8 if size in LENGTH_IN_BITS else length
        data.take(nbytes)
        if nbytes % 2 and index < count - 1:
            data.take(1)


def job(function: int, param: Cursor, data: Cursor, fields: Fields) -> None:
    """Parameters of a job (ROSCTR 1)."""
    if function == SETUP:
        param.u8()
        fields["s7comm.param.maxamq_calling"] = param.u16()
        fields["s7comm.param.maxamq_called"] = param.u16()
        fields["s7comm.param.pdu_length"] = param.u16()
    elif function in (READ_VAR, WRITE_VAR):
        count = param.u8()
        fields["s7comm.param.itemcount"] = count
        _var_items(param, count, fields)
        if function == WRITE_VAR:
            _data_items(data, count, fields, answer=False)
    elif function in BLOCK_CONTROL:
        fields["s7comm.param.blockcontrol.functionstatus"] = param.u8()
        param.take(6)
        if param.remaining:
            name = param.text(param.u8())
            fields["s7comm.param.blockcontrol.filename"] = name
            _block_name(name, fields)
    elif function == PI_SERVICE:
        param.take(7)
        block = Cursor(param.take(param.u16()))
        fields["s7comm.param.pistart.servicename"] = param.text(param.u8())
        _pi_blocks(block, fields)
    elif function == PLC_STOP:
        param.take(5)
        fields["s7comm.param.pistart.servicename"] = param.text(param.u8())


def _pi_blocks(block: Cursor, fields: Fields) -> None:
    """Block list of the _INSE/_DELE services: count, a spare byte, then 8-character names."""
    if block.remaining < 2:
        return
    count = block.u8()
    block.u8()
    for _ in range(count):
        if block.remaining < BLOCK_FILENAME - 1:
            return
        name = block.text(BLOCK_FILENAME - 1)
        if len(name) == BLOCK_FILENAME - 1:
            _append_text(fields, "s7comm.param.blockcontrol.filename", name)
            _block_parts(name, fields)


def ack(function: int, param: Cursor, data: Cursor, fields: Fields) -> None:
    """Parameters of an acknowledgement with data (ROSCTR 3)."""
    if function == SETUP:
        param.u8()
        fields["s7comm.param.maxamq_calling"] = param.u16()
        fields["s7comm.param.maxamq_called"] = param.u16()
        fields["s7comm.param.pdu_length"] = param.u16()
    elif function == READ_VAR:
        count = param.u8()
        fields["s7comm.param.itemcount"] = count
        _data_items(data, count, fields, answer=True)
    elif function == WRITE_VAR:
        count = param.u8()
        fields["s7comm.param.itemcount"] = count
        for _ in range(count):
            _append(fields, "s7comm.data.returncode", data.u8())
    elif function in BLOCK_CONTROL and param.remaining:
        fields["s7comm.param.blockcontrol.functionstatus"] = param.u8()
