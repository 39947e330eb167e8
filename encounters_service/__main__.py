"""`python -m encounters_service` is the `encounters-service` command."""

from encounters_service.cli import main

main()
