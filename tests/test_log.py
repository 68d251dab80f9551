"""tokengate.log: loggers that import logging on the first record that would be emitted.

Each behaviour that depends on logging not being imported yet runs in a fresh interpreter: the
test process has imported logging long before.
"""

import json
import logging

from tests.fresh import run_fresh as fresh
from tokengate.log import DeferredLogger, get_logger


def test_where_logging_is_imported_the_standard_logger_is_returned() -> None:
    assert get_logger("tokengate.test") is logging.getLogger("tokengate.test")


def test_before_logging_is_imported_the_levels_are_its_defaults() -> None:
    """For every level, the deferred logger's answer before the import equals the standard
    logger's own answer right after it, with nothing configured."""
    result = fresh(
        "import json, sys\n"
        "from tokengate.log import get_logger\n"
        "deferred = get_logger('tokengate.x')\n"
        "before = [deferred.isEnabledFor(level) for level in range(0, 61)]\n"
        "loaded = 'logging' in sys.modules\n"
        "import logging\n"
        "after = [logging.getLogger('tokengate.x').isEnabledFor(level) for level in range(0, 61)]\n"
        "print(json.dumps([type(deferred).__name__, loaded, before == after, before]))\n"
    )
    kind, loaded, same, before = json.loads(result.stdout)
    assert kind == "DeferredLogger" and not loaded and same
    assert before[:30] == [False] * 30 and before[30:] == [True] * 31


def test_dropped_records_import_nothing_and_a_warning_reaches_stderr() -> None:
    result = fresh(
        "import sys\n"
        "from tokengate.log import get_logger\n"
        "log = get_logger('tokengate.x')\n"
        "log.debug('not shown'); log.info('not shown either')\n"
        "print('logging' in sys.modules)\n"
        "log.warning('status list refresh failed: %s', 'timeout')\n"
        "print('logging' in sys.modules)\n"
    )
    assert result.stdout.split() == ["False", "True"]
    # No handler configured: logging's last resort writes the message to stderr.
    assert result.stderr.strip() == "status list refresh failed: timeout"


def test_a_level_configured_later_applies_and_records_name_their_caller() -> None:
    result = fresh(
        "from tokengate.log import get_logger\n"
        "log = get_logger('tokengate.x')\n"
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.DEBUG,\n"
        "                    format='%(name)s %(levelname)s %(funcName)s %(message)s')\n"
        "def caller():\n"
        "    log.debug('d %d', 1)\n"
        "    log.info('i', extra={'reason': 'expired'})\n"
        "    try:\n"
        "        raise ValueError('boom')\n"
        "    except ValueError:\n"
        "        log.exception('e')\n"
        "caller()\n"
    )
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "tokengate.x DEBUG caller d 1",
        "tokengate.x INFO caller i",
        "tokengate.x ERROR caller e",
    ]
    assert "ValueError: boom" in result.stdout  # exception() keeps the traceback


def test_the_deferred_logger_follows_a_configured_logging_in_process() -> None:
    deferred = DeferredLogger("tokengate.test.deferred")
    standard = logging.getLogger("tokengate.test.deferred")
    standard.setLevel(logging.ERROR)
    try:
        assert not deferred.isEnabledFor(logging.WARNING)
        assert deferred.isEnabledFor(logging.ERROR)
        standard.setLevel(logging.DEBUG)
        assert deferred.isEnabledFor(logging.DEBUG)
    finally:
        standard.setLevel(logging.NOTSET)
