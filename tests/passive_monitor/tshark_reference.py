"""tshark as the reference dissector, and packet-by-packet comparison with ours.

tshark's output is parsed from ``-T fields`` with every occurrence of every
field (``-E occurrence=a``) so a frame carrying several PDUs compares all of
them in order. Both sides are normalised explicitly before comparing: tshark
prints some integer fields in hex (``0x44``) and booleans as ``1``/``0`` or
``True``/``False`` depending on its version, while our messages hold Python
values; bytes compare as lowercase hex without separators.

A frame counts as dissected by us when one of our messages for the protocol
carries fields; messages that only carry violations stand for bytes we
refused to parse, which tshark shows as plain TCP data.
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from passive_monitor.dissectors.base import FieldValue, Message
from passive_monitor.sensor import Sensor
from tests.components import binary

Reference = dict[int, dict[str, list[str]]]

HEX = re.compile(r"0x[0-9a-fA-F]+")
DEC = re.compile(r"-?[0-9]+")
BOOLEANS = {"true": "1", "false": "0"}
# Always requested, so malformed frames are known without a second tshark run.
MALFORMED = "_ws.malformed"


def tshark_fields(
    pcap: Path,
    *,
    display_filter: str,
    fields: Sequence[str],
    decode_as: Sequence[str] = (),
    preferences: Sequence[str] = (),
) -> Reference:
    """Frame number -> field -> values, for frames matching *display_filter*.

    The result also holds ``_ws.malformed`` for every frame.

    *decode_as* entries are passed as ``-d`` (``tcp.port==20000,dnp3``) for
    traffic tshark's port table or heuristics would miss; *preferences* as
    ``-o`` (``tcp.no_subdissector_on_error:TRUE``).
    """
    return _tshark(
        str(Path(pcap).resolve()),
        display_filter,
        tuple(fields),
        tuple(decode_as),
        tuple(preferences),
    )


@functools.cache
def _tshark(
    pcap: str,
    display_filter: str,
    fields: tuple[str, ...],
    decode_as: tuple[str, ...],
    preferences: tuple[str, ...],
) -> Reference:
    command = [binary("tshark"), "-n", "-r", pcap, "-Y", display_filter, "-T", "fields"]
    for rule in decode_as:
        command += ["-d", rule]
    for pref in preferences:
        command += ["-o", pref]
    command += ["-e", "frame.number"]
    for name in (*fields, MALFORMED):
        command += ["-e", name]
    command += ["-E", "occurrence=a", "-E", "separator=/t", "-E", "aggregator=|"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    result: Reference = {}
    for line in done.stdout.splitlines():
        columns = line.split("\t")
        if not columns[0]:
            continue
        values = columns[1:] + [""] * (len(fields) + 2 - len(columns))
        result[int(columns[0])] = {
            name: value.split("|") if value else []
            for name, value in zip((*fields, MALFORMED), values, strict=False)
        }
    return result


def tshark_malformed(
    pcap: Path, *, display_filter: str, fields: Sequence[str], decode_as: Sequence[str] = ()
) -> set[int]:
    """Frames tshark itself reports as malformed (from the same, cached, run)."""
    shown = tshark_fields(pcap, display_filter=display_filter, fields=fields, decode_as=decode_as)
    return {frame for frame, values in shown.items() if values[MALFORMED]}


@functools.cache
def _ours(pcap: str, protocol: str, reorder_bytes: int) -> dict[int, list[Message]]:
    found: dict[int, list[Message]] = {}
    for observation in Sensor(reorder_bytes=reorder_bytes).observe_file(pcap):
        message = observation.message
        if message is not None and message.protocol == protocol:
            found.setdefault(message.frame, []).append(message)
    return found


def ours(pcap: Path, protocol: str, *, reorder_bytes: int = 65536) -> dict[int, list[Message]]:
    """Frame number -> our messages of *protocol* completed in that frame."""
    return _ours(str(Path(pcap).resolve()), protocol, reorder_bytes)


def normalise_reference(value: str) -> str:
    """A tshark value in the one spelling used for comparison."""
    if HEX.fullmatch(value):
        return str(int(value, 16))
    if DEC.fullmatch(value):
        return str(int(value))
    lowered = value.lower()
    if lowered in BOOLEANS:
        return BOOLEANS[lowered]
    return value


def normalise_ours(value: FieldValue) -> list[str]:
    """Our field value as the list of occurrences tshark would print."""
    if isinstance(value, bool):
        return ["1" if value else "0"]
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, bytes):
        return [value.hex()]
    if isinstance(value, tuple):
        return [item for element in value for item in normalise_ours(element)]
    if isinstance(value, float):
        return [repr(value)]
    return [value]


def mismatches(
    pcap: Path,
    protocol: str,
    *,
    display_filter: str,
    fields: Sequence[str],
    decode_as: Sequence[str] = (),
    preferences: Sequence[str] = (),
    reorder_bytes: int = 65536,
    exclude: Mapping[int, Collection[str]] | None = None,
) -> list[str]:
    """Every difference between tshark and us, frame by frame and field by field.

    *exclude* names, per frame, fields left out of the comparison; callers use
    it only for documented defects of the reference and check those frames
    their own way.
    """
    reference = tshark_fields(
        pcap,
        display_filter=display_filter,
        fields=fields,
        decode_as=decode_as,
        preferences=preferences,
    )
    mine = {
        frame: messages
        for frame, messages in ours(pcap, protocol, reorder_bytes=reorder_bytes).items()
        if any(message.fields for message in messages)
    }
    problems: list[str] = []
    for frame in sorted(set(reference) | set(mine)):
        if frame not in mine:
            theirs_shown = {name: values for name, values in reference[frame].items() if values}
            problems.append(f"frame {frame}: tshark shows {protocol}, we do not: {theirs_shown}")
            continue
        if frame not in reference:
            ours_shown = [message.fields for message in mine[frame]]
            problems.append(f"frame {frame}: we show {protocol}, tshark does not: {ours_shown}")
            continue
        skipped = exclude.get(frame, ()) if exclude else ()
        for name in fields:
            if name in skipped:
                continue
            theirs = [normalise_reference(v) for v in reference[frame][name]]
            own = [
                item
                for message in mine[frame]
                if name in message.fields
                for item in normalise_ours(message.fields[name])
            ]
            if theirs != own:
                problems.append(f"frame {frame}: {name}: tshark {theirs} ours {own}")
    return problems
