"""One module per subcommand; each exposes a plain function the CLI calls."""
