"""Reading a file someone named, never more of it than its kind can be.

Key files, root metadata, images and slots all come from paths an operator
or a board directory gives. Reading one whole and checking its size after
would let a wrong path (a disk image, ``/dev/zero``) exhaust memory before
the check runs, so the read itself is bounded: at most one byte past the
limit, which is how an oversized file is told from one exactly at it.
"""

from pathlib import Path

from device_runtime.core.errors import ConfigError

__all__ = ["MAX_PEM_FILE", "read_bounded"]

#: A PEM key file: a P-256 or RSA-4096 key with its armour is a few KiB.
MAX_PEM_FILE = 16 << 10


def read_bounded(path: Path, limit: int, *, what: str) -> bytes:
    """The bytes of *path*, a *what* (a key file, root metadata, …) of at most *limit* bytes.

    ConfigError names the file and the reason: missing, unreadable, or over the limit.
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"there is no {what} {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {path} is over {limit} bytes")
    return data
