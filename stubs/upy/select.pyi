# MicroPython's ``select``: poll registers any stream object, TLS ones included.
# https://docs.micropython.org/en/latest/library/select.html

POLLIN: int
POLLOUT: int
POLLERR: int
POLLHUP: int

class poll:
    def register(self, obj: object, eventmask: int = ..., /) -> None: ...
    def unregister(self, obj: object, /) -> None: ...
    def poll(self, timeout: int = ..., /) -> list[tuple[object, int]]: ...
