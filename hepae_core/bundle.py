"""``python -m hepae_core.bundle``: the entry point rendered job scripts and site profiles
name (``module:`` / ``bundle_module:``); the code is :mod:`hepae_core.run.bundle`.

Kept at this path so job scripts rendered by earlier versions, and profiles that name
the module, keep working.
"""

from hepae_core.run.bundle import main

if __name__ == "__main__":
    raise SystemExit(main())
