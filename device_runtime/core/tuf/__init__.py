"""The TUF 1.0 client of the device core (spec section 5), on CPython and MicroPython.

``updater.Updater`` runs the workflow; its fetcher, metadata and target
storage, crypto and clock are the port's, so the same trusted code runs on a
board and in the tests.
"""
