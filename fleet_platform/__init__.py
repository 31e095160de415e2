"""The fleet server's platform: what every server-side service stands on.

Storage engine and migration runner, the fleet PKI, the managed broker and its
supervision, the MQTT gateway, API tokens and server configuration. It imports
only the shared device core; the services above it register handlers, routes
and tables, and the server composition (``sevenfold``) wires them together.
"""
