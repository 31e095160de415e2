pytest_plugins = ["tests.broker_fixtures", "tests.fleet_platform.storage.database_fixtures"]
