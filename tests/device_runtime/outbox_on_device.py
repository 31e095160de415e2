"""The failure outbox on MicroPython, device half of ``test_outbox_under_micropython.py``.

Run from the bundle's ROMFS image by ``flash_launcher.py`` (``main(argv)``). ``heap``
prints what importing the outbox, the failure capture and the report's messages costs a
device already running the agent: ``OUTBOX heap TOTAL OUTBOX CAPTURE REPORT``. ``fill
FLASH STATE BOOT N`` mounts the outbox on a flash-like file as boot BOOT, reads back the
reboot reason the previous boot marked, records it, a crash (frames parsed from
``sys.print_exception``), a security event and N metrics records, marks the next
reboot's reason, and prints what it holds: ``OUTBOX held PENDING DROPPED TORN FREE``.
``upload CONFIG`` boots the agent over mutual TLS, enrolls, collects, and drains the
outbox on the configuration's flash in batches of the configuration's size: ``OUTBOX
enrolled FREE``, ``OUTBOX imported FREE``, ``OUTBOX pending N``, ``OUTBOX free FREE``,
``OUTBOX wait MS``, ``OUTBOX pending 0 FREE``.
"""

import gc

PORTABLE_HELPER = True
MARK = "OUTBOX"


def _free():
    gc.collect()
    return gc.mem_free()


def heap():
    from device_runtime.core import agent, protocol  # noqa: F401  what every device runs

    before = _free()
    from device_runtime.core import outbox  # noqa: F401

    stored = _free()
    from device_runtime.core import failure_capture  # noqa: F401

    captured = _free()
    from device_runtime.core import failure_report  # noqa: F401

    print(MARK, "heap", before - _free(), before - stored, stored - captured, captured - _free())


def _nested(depth):
    if depth == 0:
        raise OSError("sensor bus stuck")
    _nested(depth - 1)


def fill(flash, state, boot, count):
    from device_runtime.core.failure_capture import FailureCapture, mark_reboot, take_reboot
    from device_runtime.core.outbox import Outbox
    from device_runtime.ports.micropython.block_device import FileBlockDevice
    from device_runtime.ports.micropython.clock import SystemClock
    from device_runtime.ports.micropython.exception_frames import exception_frames
    from device_runtime.ports.micropython.storage import DirectoryStore

    store = DirectoryStore(directory=state)
    outbox = Outbox(FileBlockDevice(path=flash, size=4 * 4096), boot)
    failures = FailureCapture(outbox, SystemClock(), "1.0.0", exception_frames)
    failures.reboot(take_reboot(store))
    try:
        _nested(3)
    except OSError as exc:
        failures.crash(exc)
    failures.security("signature", "slot B image signature does not verify")
    for _ in range(count):
        failures.metrics(_free(), 0)
    mark_reboot(store, "software-watchdog")
    print(MARK, "held", outbox.pending(), outbox.dropped, outbox.torn, _free())


def upload(path):
    from tests.device_runtime.configured_agent import configured_agent

    config, transport, agent = configured_agent(path)
    try:
        agent.boot()
        agent.enroll()
        print(MARK, "enrolled", _free())  # _free collects: a board collects before an upload
        # Imported once connected, as a board brings in what it needs then: TLS's
        # handshake wants its buffers in one piece.
        from device_runtime.core import failure_report
        from device_runtime.core.outbox import Outbox
        from device_runtime.ports.micropython.block_device import FileBlockDevice

        print(MARK, "imported", _free())
        outbox = Outbox(FileBlockDevice(path=config["flash"], size=4 * 4096), agent.boot_count)
        print(MARK, "pending", outbox.pending())
        print(MARK, "free", _free())
        print(MARK, "wait", failure_report.upload(agent, outbox, int(config["batch"])))
        print(MARK, "pending", outbox.pending(), _free())
    finally:
        transport.close()


def main(argv):
    if argv[0] == "heap":
        heap()
    elif argv[0] == "upload":
        upload(argv[1])
    else:
        fill(argv[1], argv[2], int(argv[3]), int(argv[4]))
