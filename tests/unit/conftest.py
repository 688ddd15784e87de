"""What every unit test may assume about the pytest process it runs in."""

from __future__ import annotations

import pytest

from app.ledger import outbox


@pytest.fixture(autouse=True)
def _no_background_relay() -> None:
    """No relay runs behind the test. A submit starts one in its API process (here, the
    pytest process) that runs until stopped; left running from an earlier test, it would
    claim the rows a test stages for the relay's and the lease recovery's own functions."""
    for relay in list(outbox._relays.values()):
        outbox.stop_relay(relay.app)
