"""`python -m exactvc.cli` runs the `exact` command."""

from . import main

main()
