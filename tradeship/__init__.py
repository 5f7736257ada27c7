"""tradeship: the command-line entry point and its settings."""
