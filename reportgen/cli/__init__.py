"""The command line: every command is a call of the public Python API."""
