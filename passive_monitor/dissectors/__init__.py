"""Industrial protocol dissectors, looked up by transport and well-known port."""

from __future__ import annotations

import importlib

from passive_monitor.dissectors.base import DatagramDissector, Message, StreamDissector

__all__ = ["DISSECTOR_MODULES", "DatagramDissector", "Message", "StreamDissector", "all_dissectors"]

DISSECTOR_MODULES = ("modbus", "dnp3", "bacnet", "s7comm", "enip", "iec104")


def all_dissectors() -> list[type[StreamDissector] | type[DatagramDissector]]:
    """Every dissector class; each module exposes its classes in ``DISSECTORS``."""
    found: list[type[StreamDissector] | type[DatagramDissector]] = []
    for name in DISSECTOR_MODULES:
        module = importlib.import_module(f"passive_monitor.dissectors.{name}")
        found.extend(module.DISSECTORS)
    return found
