"""The sample sensor application: the firmware the simulated boards boot and run.

``app.py`` is the application itself (portable: CPython and MicroPython), the
one module an image's payload carries; ``releases.py`` says what each release
configures and makes the payload. docs/firmware.md describes both.
"""
