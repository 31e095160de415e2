pytest_plugins = ["tests.broker_fixtures", "tests.sevenfold.storage.database_fixtures"]
