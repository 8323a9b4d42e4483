"""Text from users' files made safe to print on a terminal: :mod:`hepae_core.text`.

The rule lives in ``hepae_core`` so that ``hepae-data``, ``hepae-train`` and ``gridsearch``
escape the same characters the same way; this module keeps the name the orchestration
imports.
"""

from hepae_core.text import safe, safe_text

__all__ = ["safe", "safe_text"]
