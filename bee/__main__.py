"""`python -m bee` runs the bee command line."""

from bee.cli import main

main()
