"""The command line: argument parsing, and the one place that turns errors into exit codes."""
