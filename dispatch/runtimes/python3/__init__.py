"""The Python function server: `python -P -m dispatch.runtimes.python3 --help`."""
