"""The `bee` command line, shared by both stages (see bee.cli)."""
