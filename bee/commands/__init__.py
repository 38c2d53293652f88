"""One module per `bee` command; each wires typer options to its stage, nothing more."""
