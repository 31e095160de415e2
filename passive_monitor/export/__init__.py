"""SIEM export: JSON lines files and CEF over syslog (RFC 5424 over UDP or TCP)."""
