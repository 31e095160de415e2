"""The ``sevenfold`` command; the app itself is assembled in ``sevenfold.cli.app``."""
