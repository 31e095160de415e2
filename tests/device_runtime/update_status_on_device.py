"""Update reports from MicroPython, device half of ``test_update_status_under_micropython.py``.

Run from the bundle's ROMFS image by ``flash_launcher.py`` (``main(argv)`` with ``heap`` or
``report CONFIG``). ``heap`` prints what importing the update reporter costs a device that
already runs the agent: ``UPDATE heap IMPORT REPORTER`` (bytes of heap taken by the import,
then by one UpdateReporter). ``report`` boots the agent over mutual TLS with the
configuration's credential, enrolls, and walks an update through its states, one
``UPDATE`` line per step, the server's answers included.
"""

import gc

PORTABLE_HELPER = True
MARK = "UPDATE"


def _free():
    gc.collect()
    return gc.mem_free()


def heap():
    from device_runtime.core import agent, protocol  # noqa: F401  what every device runs

    before = _free()
    from device_runtime.core import update_status

    imported = _free()
    reporter = update_status.UpdateReporter(None)
    print(MARK, "heap", before - imported, imported - _free(), reporter.seq)


def report(path):
    from device_runtime.core.errors import ProtocolError
    from tests.device_runtime.configured_agent import configured_agent

    _, transport, agent = configured_agent(path)
    try:
        print(MARK, "boot", agent.boot())
        agent.enroll()
        # Imported once an update begins, the way a board brings in what it needs then.
        from device_runtime.core.update_status import UpdateReporter

        reporter = UpdateReporter(agent, progress_interval_ms=600000)
        target = "mcu-board/fw-1.1.0.img"
        ack = reporter.report("checking", "1.0.0", "1.1.0", target)
        print(MARK, "ack", ack["boot_count"], ack["seq"])
        sent = 0
        for block in range(11):
            if reporter.progress("1.0.0", "1.1.0", target, block * 4096, 40960) is not None:
                sent += 1
        print(MARK, "progress sent", sent, "of 11")
        for state in ("installed", "booted", "confirmed"):
            ack = reporter.report(state, "1.0.0", "1.1.0", target)
            print(MARK, "ack", ack["boot_count"], ack["seq"])
        ack = reporter.report(
            "failed", "1.1.0", "1.2.0", "mcu-board/fw-1.2.0.img", reason="hash mismatch"
        )
        print(MARK, "ack", ack["boot_count"], ack["seq"])
        stale = {
            "state": "confirmed",
            "from_version": "1.0.0",
            "to_version": "1.1.0",
            "target": target,
            "boot_count": agent.boot_count,
            "seq": 1,
        }
        try:
            agent.request("update-status", stale)
            print(MARK, "stale key accepted")
        except ProtocolError as exc:
            print(MARK, "refused", exc.code)
        try:
            reporter.report("exploded", "1.0.0", "1.1.0", target)
            print(MARK, "unknown state sent")
        except ProtocolError as exc:
            print(MARK, "refused locally", exc.code)
        print(MARK, "free", _free())
    finally:
        transport.close()


def main(argv):
    if argv[0] == "heap":
        heap()
    else:
        report(argv[1])
