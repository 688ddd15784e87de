"""entrypoint.sh: known modes exec their process; anything else prints usage and exits 64."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./entrypoint.sh", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("args", [(), ("bogus",), ("worker",), ("worker", "gpu")])
def test_unknown_or_incomplete_mode_prints_usage_and_exits_64(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 64
    assert "usage: entrypoint.sh" in result.stderr or "unknown" in result.stderr


def test_every_mode_execs_its_process() -> None:
    script = (ROOT / "entrypoint.sh").read_text()
    for command in (
        "exec gunicorn",
        'exec celery "${args[@]}"',
        "exec celery -A app.celery beat",
        "exec flask --app app db upgrade",
        "exec python -m app.dev",
    ):
        assert command in script
