"""A writer that kills itself (SIGKILL, no cleanup) just before its k-th file write.

Run as ``python -m tests.update_service.write_until_killed STATE K OPERATION ARGS...``
with OPERATION one of ``publish IMAGE MODEL``, ``import-root ROOT_FILE`` and
``rotate-releases``; K = 0 never kills. The hook wraps the one function every
repository, record and online-key write goes through, so "before write k" is
each point at which a real crash (power cut, OOM kill) can leave the
repository. Prints the number of writes made when it finishes.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from device_runtime.ports.cpython import atomic_file
from update_service import (
    hardware_models,
    key_ceremony,
    release_publisher,
    root_metadata,
    signing_keys,
    tuf_repository,
)
from update_service.release_store import ReleaseStore


def main() -> None:
    state, kill_at, operation, *args = sys.argv[1:]
    writes = 0
    real = atomic_file.write_atomic

    def counted(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        nonlocal writes
        writes += 1
        if writes == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        real(path, data, mode=mode)

    for module in (tuf_repository, hardware_models, signing_keys):
        module.write_atomic = counted  # type: ignore[attr-defined]
    store = ReleaseStore(Path(state))
    if operation == "publish":
        image, model = args
        release_publisher.publish(store, Path(image).read_bytes(), model=model)
    elif operation == "import-root":
        (root_file,) = args
        key_ceremony.import_root(store, root_metadata.read_root_file(Path(root_file)))
    elif operation == "rotate-releases":
        key_ceremony.rotate(store, "releases")
    else:
        raise SystemExit(f"unknown operation {operation!r}")
    print(writes)


if __name__ == "__main__":
    main()
