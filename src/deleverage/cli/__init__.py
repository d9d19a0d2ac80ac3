"""The `deleverage` command line."""
