"""A publisher that kills itself (SIGKILL, no cleanup) just before its k-th file write.

Run as ``python -m tests.update_service.publish_until_killed STATE IMAGE MODEL K``;
K = 0 never kills. The hook wraps the one function every repository and
record write goes through, so "before write k" is each point at which a real
crash (power cut, OOM kill) can leave the repository. Prints the number of
writes made when it finishes.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from device_runtime.ports.cpython import atomic_file
from update_service import hardware_models, release_publisher, tuf_repository
from update_service.release_store import ReleaseStore


def main() -> None:
    state, image, model, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    writes = 0
    real = atomic_file.write_atomic

    def counted(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        nonlocal writes
        writes += 1
        if writes == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(path, data, mode=mode)

    tuf_repository.write_atomic = counted  # type: ignore[assignment]
    hardware_models.write_atomic = counted  # type: ignore[assignment]
    release_publisher.publish(ReleaseStore(Path(state)), Path(image).read_bytes(), model=model)
    print(writes)


if __name__ == "__main__":
    main()
