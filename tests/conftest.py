pytest_plugins = ["tests.support.mints"]
