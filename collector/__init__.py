"""A real OpenTelemetry Collector for the tests, built from Go modules (see `collector/build.py`)."""
