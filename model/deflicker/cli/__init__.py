"""The ``deflicker`` command line and its subcommands."""
