"""``python -m sevenfold.cli``, the same as the ``sevenfold`` console script."""

from sevenfold.cli.app import main

main()
