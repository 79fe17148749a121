"""``python -m chainfuzz``: the same as the ``chainfuzz`` command."""

from .cli import main

raise SystemExit(main())
