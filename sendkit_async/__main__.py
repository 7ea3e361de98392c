"""``python -m sendkit_async``: the ``sendkit-async`` command line."""

from sendkit_async.cli import main

main()
