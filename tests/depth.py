"""How many generated cases the heaviest property tests run.

``make test`` runs each property at its everyday depth: hundreds of cases, new ones every run
(hypothesis draws afresh each time and replays the failures it has kept). ``make test-deep``
(``TOKENGATE_TEST_DEPTH=deep``) runs them at the depth they were written for — thousands of
cases, the depth an independent review replays — before a release or after a change to route
planning, claim handling or the token parser.
"""

from __future__ import annotations

import os

DEEP = os.environ.get("TOKENGATE_TEST_DEPTH", "") == "deep"


def examples(deep: int, everyday: int) -> int:
    """``deep`` cases under ``make test-deep``, ``everyday`` under ``make test``."""
    return deep if DEEP else everyday
