"""``python -m remediate``: the same command line as the ``remediate`` script."""

from remediate.cli import main

main()
