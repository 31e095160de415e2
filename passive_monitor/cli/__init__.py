"""The passive monitor's commands, mounted into ``sevenfold`` as ``monitor``, ``assets``
and ``baseline``."""

from passive_monitor.cli.assets import assets_app
from passive_monitor.cli.baseline import baseline_app
from passive_monitor.cli.monitor import monitor_command

__all__ = ["assets_app", "baseline_app", "monitor_command"]
