"""``python -m streamrec``: the ``streamrec`` command."""

from streamrec.cli import main

main()
