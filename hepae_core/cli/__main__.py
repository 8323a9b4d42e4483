"""``python -m hepae_core.cli``: the same as the ``hepae-train`` command."""

from hepae_core.cli import main

raise SystemExit(main())
