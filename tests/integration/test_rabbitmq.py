"""RabbitMQ is a URL away: the same API and workers run jobs with an AMQP broker."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support import services
from tests.support.api import Api
from tests.support.side_stack import side_stack

RABBITMQCTL = shutil.which("rabbitmqctl")


def _ctl(*args: str) -> None:
    assert RABBITMQCTL
    subprocess.run([RABBITMQCTL, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    if services.embedded_only() or not services.answers("127.0.0.1", 5672) or not RABBITMQCTL:
        pytest.skip("no local RabbitMQ (127.0.0.1:5672 with rabbitmqctl)")
    # A vhost of our own: no other test session's worker can take our messages.
    vhost = f"tasklane-test-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        _ctl("delete_vhost", vhost)


def test_job_runs_with_a_rabbitmq_broker(
    amqp_url: str, base_settings: dict[str, Any], worker_env: dict[str, str], tmp_path: Path
) -> None:
    with side_stack(
        base_settings, worker_env, tmp_path, "amqp", queues=["dataset"], CELERY_BROKER_URL=amqp_url
    ) as side:
        client: FlaskClient = side.app.test_client()
        api = Api(client, side.database.auth)
        job = api.submit("tests.echo", args={"value": "over amqp"}, priority=9)
        done = api.wait(job["id"])
        assert done["state"] == "succeeded"
        assert done["result"] == {"value": "over amqp"}
        assert done["worker"] == side.worker.hostname

        queues = client.get("/api/v1/queues", headers=api.auth).get_json()["queues"]
        dataset = next(q for q in queues if q["name"] == "dataset")
        assert dataset["waiting"] == 0
        assert [w["worker"] for w in dataset["workers"]] == [side.worker.hostname]
