pytest_plugins = [
    "tests.broker_fixtures",
    "tests.firmware_fixtures",
    "tests.fleet_platform.storage.database_fixtures",
]
