"""The portable backends as the conformance suite opens them, on CPython or MicroPython.

A backend here is an object with ``kind``, ``open(device, firmware)`` (a boot
of that device: the same *device* name means the same durable state),
``store(device)`` (its durable state, for the checks that damage it),
``firmware_bound`` (the attestation key follows the firmware measurement) and
``close()``. Each one lives in a fresh directory under /tmp, on the platform's
own ports: OpenSSL signing on CPython, the core signer on MicroPython. Kept
small: under MicroPython this module shares 64 KiB with everything it tests.
"""

import os
import sys

PORTABLE_HELPER = True

if sys.implementation.name == "micropython":
    from device_runtime.ports.micropython import crypto
    from device_runtime.ports.micropython.storage import DirectoryStore
else:
    from device_runtime.ports.cpython import crypto
    from device_runtime.ports.cpython.storage import DirectoryStore


def _remove_tree(path):
    for entry in os.listdir(path):
        child = path + "/" + entry
        try:
            os.remove(child)
        except OSError:
            _remove_tree(child)
    os.rmdir(path)


class Backend:
    def __init__(self, kind, directory=None):
        """A fresh directory under /tmp, or *directory* (made by the caller, kept on close)."""
        self.kind = kind
        self.firmware_bound = kind == "dice"
        self._owned = directory is None
        if directory is None:
            directory = "/tmp/sevenfold-rot-" + crypto.random_bytes(8).hex()
            os.mkdir(directory)
        self.directory = directory

    def store(self, device, below=""):
        path = self.directory + "/" + device + below
        for prefix in (self.directory + "/" + device, path):
            try:  # noqa: SIM105 (MicroPython has no contextlib.suppress)
                os.mkdir(prefix)
            except OSError:
                pass
        return DirectoryStore(directory=path if sys.implementation.name == "micropython" else
                              __import__("pathlib").Path(path))  # fmt: skip

    def open(self, device, firmware="1.0.0"):
        if self.kind == "software":
            from device_runtime.rot.software import SoftwareRootOfTrust

            return SoftwareRootOfTrust.open(
                store=self.store(device),
                random_bytes=crypto.random_bytes,
                sign_es256=crypto.sign_es256,
            )
        from device_runtime.rot import dice

        uds = self.store(device, "/uds")
        if uds.read(dice.UDS_KEY) is None:
            dice.manufacture(uds, crypto.random_bytes)
        return dice.DiceRootOfTrust.boot(
            uds_store=uds,
            store=self.store(device),
            firmware_measurement=crypto.sha256(firmware.encode()),
            vendor="Sevenfold",
            model="conformance-board",
            version=firmware,
            svn=1,
            random_bytes=crypto.random_bytes,
            sign_es256=crypto.sign_es256,
        )

    def close(self):
        if self._owned:
            _remove_tree(self.directory)


PORTABLE_KINDS = ("software", "dice")


def on_every_backend(check, kinds=PORTABLE_KINDS):
    """Run *check* against each portable backend (of *kinds*), each in a fresh directory."""
    for kind in kinds:
        backend = Backend(kind)
        try:
            check(backend)
        finally:
            backend.close()
