"""The ``tokengate`` command line's entry point.

``tokengate token`` with a valid cached token is answered by :mod:`tokengate_cli.fast` before
argparse, the commands or any HTTP library are imported (it runs inside people's pipelines);
everything else goes to :mod:`tokengate_cli.commands`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: this path never imports typing
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from .fast import cached_token

    arguments = list(sys.argv[1:] if argv is None else argv)
    answered = cached_token(arguments)
    if answered is not None:
        return answered
    from .commands import main as full

    return full(arguments)


def main_exit() -> None:
    """The console script's entry point."""
    sys.exit(main())
