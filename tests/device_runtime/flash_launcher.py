"""Run a MicroPython module from a ROMFS image kept outside its heap, as a board's flash.

``python flash_launcher.py IMAGE HEAP MODULE [ARG ...]`` runs the MicroPython unix port in
this process (the ``micropython`` command is a CPython script around the same call) with
``-X heapsize=HEAP``. The image is read into memory of this process, outside MicroPython's
heap; the device mounts it at ``/flash`` as a ``vfs.VfsRom`` over that memory
(``uctypes.bytearray_at``) and imports MODULE from it, then calls ``MODULE.main(args)``.
Bytecode then stays in the image, as it does on a board with a ROM partition, and the
heap holds only what the modules make when they run: on a 64 KiB board that is the heap
there is. CPython only.
"""

import ctypes
import sys

from micropython_unix import run_main

DEVICE_SIDE = (
    "import sys, uctypes, vfs\n"
    "vfs.mount(vfs.VfsRom(uctypes.bytearray_at({address}, {size})), '/flash')\n"
    "sys.path[:] = ['/flash', '.frozen']\n"
    "import {module} as module\n"
    "module.main({args!r})\n"
)


def main(argv: list[str]) -> int:
    image_path, heap, module, *args = argv
    with open(image_path, "rb") as handle:
        image = handle.read()
    flash = ctypes.create_string_buffer(image, len(image))
    code = DEVICE_SIDE.format(
        address=ctypes.addressof(flash), size=len(image), module=module, args=args
    )
    return int(run_main(["micropython", "-X", "heapsize=" + heap, "-c", code]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
