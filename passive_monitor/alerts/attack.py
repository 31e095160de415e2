"""MITRE ATT&CK for ICS technique ids that alerts cite.

Only techniques whose published definition matches what the wire shows are
listed; an alert without a clear fit carries no id rather than a loose one,
because SOC playbooks key on these ids.
"""

from __future__ import annotations

MODIFY_PARAMETER = "T0836"
UNAUTHORIZED_COMMAND_MESSAGE = "T0855"
PROGRAM_DOWNLOAD = "T0843"
PROGRAM_UPLOAD = "T0845"
DEVICE_RESTART_SHUTDOWN = "T0816"
CHANGE_OPERATING_MODE = "T0858"
SERVICE_STOP = "T0881"
DENIAL_OF_SERVICE = "T0814"
REMOTE_SYSTEM_DISCOVERY = "T0846"
REMOTE_SYSTEM_INFORMATION_DISCOVERY = "T0888"

NAMES = {
    MODIFY_PARAMETER: "Modify Parameter",
    UNAUTHORIZED_COMMAND_MESSAGE: "Unauthorized Command Message",
    PROGRAM_DOWNLOAD: "Program Download",
    PROGRAM_UPLOAD: "Program Upload",
    DEVICE_RESTART_SHUTDOWN: "Device Restart/Shutdown",
    CHANGE_OPERATING_MODE: "Change Operating Mode",
    SERVICE_STOP: "Service Stop",
    DENIAL_OF_SERVICE: "Denial of Service",
    REMOTE_SYSTEM_DISCOVERY: "Remote System Discovery",
    REMOTE_SYSTEM_INFORMATION_DISCOVERY: "Remote System Information Discovery",
}
