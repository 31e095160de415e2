"""``python -m sevenfold.cli``, the same as the ``sevenfold`` console script."""

from sevenfold.cli import main

main()
