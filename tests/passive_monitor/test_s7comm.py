"""S7comm over ISO-on-TCP: our fields against tshark's, and the PLC identity we extract.

Not comparable as they stand, and how they are compared instead:

- ``cotp.destref``: tshark adds it with value 0 to every class-0 DT TPDU, which
  has no destination reference on the wire; compared only through ``cotp.srcref``
  on CR/CC, where both references exist.
- String fields made of digits (block numbers ``00001``, block types ``08``):
  the shared normaliser reads them as integers, so they are compared verbatim
  by ``_verbatim_differences``.
- Some captures miss TCP segments (tshark: "previous segment not captured").
  tshark dissects past the hole at once; the sensor by default holds data
  behind a hole until the peer acknowledges it, which moves those PDUs to the
  acknowledging frame. They are compared with ``reorder_bytes=0``, the sensor's
  tshark-like mode.
- S7comm-plus (protocol id 0x72): tshark 4.0 has no dissector for it (it shows
  the COTP payload as data), so its fields are checked against the capture bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from passive_monitor.dissectors.base import Message
from passive_monitor.dissectors.s7comm import S7commDissector
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.tshark_reference import (
    mismatches,
    normalise_ours,
    ours,
    tshark_fields,
)

FIELDS = (
    "tpkt.version",
    "tpkt.length",
    "cotp.type",
    "cotp.tpdu-number",
    "cotp.eot",
    "cotp.srcref",
    "s7comm.header.protid",
    "s7comm.header.rosctr",
    "s7comm.header.pduref",
    "s7comm.header.parlg",
    "s7comm.header.datlg",
    "s7comm.header.errcls",
    "s7comm.header.errcod",
    "s7comm.param.func",
    "s7comm.param.maxamq_calling",
    "s7comm.param.maxamq_called",
    "s7comm.param.pdu_length",
    "s7comm.param.itemcount",
    "s7comm.param.item.syntaxid",
    "s7comm.param.item.transp_size",
    "s7comm.param.item.length",
    "s7comm.param.item.db",
    "s7comm.param.item.area",
    "s7comm.param.item.address",
    "s7comm.data.returncode",
    "s7comm.param.blockcontrol.functionstatus",
    "s7comm.param.userdata.type",
    "s7comm.param.userdata.funcgroup",
    "s7comm.param.userdata.subfunc",
    "s7comm.param.modetrans.subfunc",
    "s7comm.param.userdata.seq_num",
    "s7comm.param.userdata.dataunitref",
    "s7comm.param.userdata.lastdataunit",
    "s7comm.data.userdata.szl_id",
    "s7comm.data.userdata.szl_index",
    "s7comm.szl.xy11.0001.index",
    "s7comm.szl.xy11.0001.bgtyp",
    "s7comm.szl.xy11.0001.ausbg",
    "s7comm.szl.xy11.0001.ausbe",
    "s7comm.szl.001c.000x.index",
)
VERBATIM = (
    "s7comm.param.blockcontrol.filename",
    "s7comm.data.blockcontrol.file_identifier",
    "s7comm.data.blockcontrol.block_type",
    "s7comm.data.blockcontrol.block_number",
    "s7comm.data.blockcontrol.dest_filesys",
    "s7comm.param.pistart.servicename",
    "s7comm.szl.xy11.0001.anz",
    "s7comm.szl.001c.0001.name",
    "s7comm.szl.001c.0002.name",
    "s7comm.szl.001c.0005.serialn",
    "s7comm.szl.001c.0007.cputypname",
)

# Captured frames (tcp.payload).
COTP_CR = bytes.fromhex("0300001611e00000000100c0010ac1020100c2020101")
SETUP = bytes.fromhex("0300001902f08032010000000000080000f0000001000101e0")
READ_DB1 = bytes.fromhex("0300001f02f080320100001900000e00000401120a10080001000083000080")
PLC_STOP = bytes.fromhex("0300002102f080320100001c000010000029000000000009505f50524f4752414d")
INSERT_BLOCK = bytes.fromhex(
    "0300002b02f08032010000be0a001a000028000000000000fd000a01003038303030303150055f494e5345"
)
REJECTED_UPLOAD = bytes.fromhex("0300001302f08032020000150000000000d20c")


def _capture(name: str) -> Path:
    return capture("s7comm", name)


def _reorder(name: str) -> int:
    """The sensor's tshark-like mode for captures that miss TCP segments."""
    holes = tshark_fields(
        _capture(name), display_filter="tcp.analysis.lost_segment", fields=["tcp.seq"]
    )
    return 0 if holes else 65536


def _verbatim_differences(name: str) -> list[str]:
    """String fields compared without the shared normaliser's integer reading."""
    reference = tshark_fields(_capture(name), display_filter="tpkt", fields=VERBATIM)
    mine = ours(_capture(name), "s7comm", reorder_bytes=_reorder(name))
    problems: list[str] = []
    for frame, values in reference.items():
        for field in VERBATIM:
            own = [
                item
                for message in mine.get(frame, [])
                if field in message.fields
                for item in normalise_ours(message.fields[field])
            ]
            if values[field] != own:
                problems.append(f"frame {frame}: {field}: tshark {values[field]} ours {own}")
    return problems


def _one(data: bytes) -> Message:
    (message,) = S7commDissector().feed(data, to_server=True, frame=1, ts=0.0)
    return message


@pytest.mark.parametrize("name", capture_names("s7comm"))
def test_fields_match_tshark_frame_by_frame(name: str) -> None:
    found = mismatches(
        _capture(name),
        "s7comm",
        display_filter="tpkt",
        fields=FIELDS,
        reorder_bytes=_reorder(name),
    )
    assert found == []
    assert _verbatim_differences(name) == []


def test_plc_identity_from_szl_answers() -> None:
    identity: dict[str, object] = {}
    for messages in ours(_capture("snap7.pcap"), "s7comm").values():
        for message in messages:
            identity.update(
                (name, value) for name, value in message.fields.items() if ".ident." in name
            )
    assert identity == {
        "s7comm.ident.order_number": "6ES7 315-2EH14-0AB0",
        "s7comm.ident.firmware": "V3.2.7",
        "s7comm.ident.serial_number": "S C-B1U393142011",
        "s7comm.ident.module_name": "PLC_1",
    }


def test_s7comm_plus_is_identified_without_decoding() -> None:
    opcodes: set[tuple[int, int]] = set()
    for messages in ours(_capture("s7comm_plus.pcap"), "s7comm").values():
        for message in messages:
            fields = message.fields
            if "s7comm_plus.data.function" in fields:
                assert fields["s7comm_plus.header.protid"] == 0x72
                opcode, function = (
                    fields["s7comm_plus.data.opcode"],
                    fields["s7comm_plus.data.function"],
                )
                assert isinstance(opcode, int) and isinstance(function, int)
                opcodes.add((opcode, function))
    assert (0x31, 0x04F2) in opcodes


def test_connection_request() -> None:
    message = _one(COTP_CR)
    assert message.fields["cotp.type"] == 0xE
    assert message.fields["cotp.srcref"] == 0x0001
    assert message.is_request is True


def test_setup_communication() -> None:
    message = _one(SETUP)
    assert message.fields["s7comm.param.func"] == 0xF0
    assert message.fields["s7comm.param.maxamq_calling"] == 1
    assert message.fields["s7comm.param.pdu_length"] == 480


def test_read_var_address() -> None:
    fields = _one(READ_DB1).fields
    assert fields["s7comm.param.func"] == 0x04
    assert fields["s7comm.param.item.area"] == 0x83
    assert fields["s7comm.param.item.address"] == 0x80


def test_plc_stop_and_block_insert() -> None:
    assert _one(PLC_STOP).fields["s7comm.param.pistart.servicename"] == "P_PROGRAM"
    fields = _one(INSERT_BLOCK).fields
    assert fields["s7comm.param.pistart.servicename"] == "_INSE"
    assert fields["s7comm.data.blockcontrol.block_type"] == "08"
    assert fields["s7comm.data.blockcontrol.block_number"] == "00001"


def test_error_class_in_ack() -> None:
    message = _one(REJECTED_UPLOAD)
    assert message.fields["s7comm.header.errcls"] == 0xD2
    assert message.fields["s7comm.header.errcod"] == 0x0C
    assert message.is_request is False


def test_pdu_split_across_segments_and_cotp_units() -> None:
    dissector = S7commDissector()
    found: list[Message] = []
    for byte in PLC_STOP:
        found += dissector.feed(bytes([byte]), to_server=True, frame=1, ts=0.0)
    assert len(found) == 1
    first_unit = bytes.fromhex("0300000d02f000") + PLC_STOP[7:13]
    last_unit = bytes([3, 0, 0, 7 + len(PLC_STOP) - 13, 2, 0xF0, 0x80]) + PLC_STOP[13:]
    head, tail = (
        dissector.feed(u, to_server=True, frame=2, ts=0.0) for u in (first_unit, last_unit)
    )
    assert "s7comm.param.func" not in head[0].fields
    assert tail[0].fields["s7comm.param.pistart.servicename"] == "P_PROGRAM"


def test_garbage_is_skipped_with_a_violation() -> None:
    messages = S7commDissector().feed(b"\xff\xfe" + SETUP, to_server=True, frame=1, ts=0.0)
    assert messages[0].fields == {} and messages[0].violations
    assert messages[1].fields["s7comm.param.func"] == 0xF0


def test_truncated_parameters_are_a_violation() -> None:
    cut = bytearray(READ_DB1)
    cut[3] -= 4
    message = _one(bytes(cut[:-4]))
    assert message.violations
    assert message.fields["s7comm.param.func"] == 0x04
