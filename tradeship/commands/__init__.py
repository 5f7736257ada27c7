"""`tradeship` subcommands that live in their own modules (see tradeship.cli.COMMAND_MODULES)."""
