"""One observability stack (API, prefork and gevent workers, beat on demand) for every test
in this folder; it takes tens of seconds to start, so both test modules share it."""

from tests.support.observability import observability_beat  # noqa: F401 - fixture
from tests.support.observability import observability_stack  # noqa: F401 - fixture
