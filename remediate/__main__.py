"""``python -m remediate``: the same command line as the ``remediate`` script."""

from remediate.helpcache import main

main()
