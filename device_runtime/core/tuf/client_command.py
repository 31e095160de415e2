"""The command line of the TUF conformance suite's client (its CLIENT-CLI.md), on either port.

``init TRUSTED_ROOT``, ``refresh`` and ``download`` with ``--metadata-dir``,
``--metadata-url``, ``--target-name`` (repeatable, fetched in order by one
updater), ``--target-dir`` and ``--target-base-url`` in any order before the
command. Exit status 0 on success, 1 on any failure, with the error's code and
reason on stderr. MicroPython has no ``argparse``, so the parsing is here.
"""

import sys

from device_runtime.core.errors import SevenfoldError
from device_runtime.core.tuf.file_directory import FileDirectory
from device_runtime.core.tuf.updater import Limits, Updater

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock, Fetcher, TufCrypto

_OPTIONS = (
    "--metadata-dir",
    "--metadata-url",
    "--target-name",
    "--target-dir",
    "--target-base-url",
)


def _parse(argv: "list[str]") -> "tuple[dict[str, list[str]], list[str]]":
    options: dict[str, list[str]] = {}
    words: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _OPTIONS and i + 1 < len(argv):
            options.setdefault(word, []).append(argv[i + 1])
            i += 2
        elif word.startswith("-v"):
            i += 1
        else:
            words.append(word)
            i += 1
    return options, words


def _one(options: "dict[str, list[str]]", name: str) -> str:
    values = options.get(name)
    if not values or len(values) != 1:
        raise SevenfoldError(name + " must be given once")
    return values[0]


def run(
    argv: "list[str]",
    *,
    fetcher: "Fetcher",
    crypto: "TufCrypto",
    clock: "Clock",
    limits: "Limits | None" = None,
) -> int:
    """Carry out the command in *argv*; the exit status."""
    options, words = _parse(argv)
    try:
        store = FileDirectory(_one(options, "--metadata-dir"))
        limits = limits or Limits()
        if words[:1] == ["init"] and len(words) == 2:
            copy = store.open_partial("root.json")
            size = 0
            with open(words[1], "rb") as handle:
                while size <= limits.root:
                    part = handle.read(2048)
                    if not part:
                        break
                    copy.write(part)
                    size += len(part)
            copy.close()
            if size > limits.root:
                store.discard("root.json")
                raise SevenfoldError("trusted root is over " + str(limits.root) + " bytes")
            store.commit("root.json")
            return 0
        if words not in (["refresh"], ["download"]):
            raise SevenfoldError("usage: [options] init TRUSTED_ROOT | refresh | download")
        download = words[0] == "download"
        updater = Updater(
            metadata_store=store,
            fetcher=fetcher,
            crypto=crypto,
            clock=clock,
            metadata_url=_one(options, "--metadata-url"),
            targets_store=FileDirectory(_one(options, "--target-dir")) if download else None,
            targets_url=_one(options, "--target-base-url") if download else None,
            limits=limits,
        )
        updater.refresh()
        for name in options.get("--target-name", []) if download else []:
            target = updater.find(name)
            if not updater.cached(target):
                updater.download(target)
        return 0
    except MemoryError:
        print("tuf-client: too-large: does not fit in this device's memory", file=sys.stderr)
        return 1
    except (SevenfoldError, OSError) as exc:
        print(
            "tuf-client: " + (exc.explain() if isinstance(exc, SevenfoldError) else str(exc)),
            file=sys.stderr,
        )
        return 1
