"""Root conftest: the plugin's own tests drive real pytest runs through ``pytester``."""

pytest_plugins = ["pytester"]
