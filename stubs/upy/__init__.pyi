# MicroPython's own versions of modules CPython also has, for mypy only.
#
# The MicroPython port imports ``time``, ``select`` and ``ssl`` by their usual
# names at run time; under TYPE_CHECKING it imports these instead, so that it
# is checked against what MicroPython offers (ticks, stream sockets, DER
# credentials) rather than CPython's modules of the same names. They cannot be
# named ``time`` and so on: on mypy's path those would replace the standard
# library's stubs for every package checked in the same run.
