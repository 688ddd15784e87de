"""Mail delivery benchmark: render + store + one send attempt, per mail, in one process.

    uv run python bench/mail.py            # 300 mails to each transport
    uv run python bench/mail.py --mails 50

It calls the mail service as the `mail.send` task does (no broker, no worker), so it shows
what one delivery costs: over STARTTLS + AUTH to an aiosmtpd server on 127.0.0.1 (a new
SMTP session per mail, as the task opens one per attempt) and to the outbox folder. The
database is a temporary SQLite file. It prints mails/s and p50/p95 per-mail latency.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.services.mail import delivery  # noqa: E402
from app.services.mail import mails  # noqa: E402
from config import Settings  # noqa: E402
from tests.support.smtp_server import smtp_server  # noqa: E402

JOB = {
    "id": "bench",
    "task": "bench.task",
    "state": "succeeded",
    "queue": "dataset",
    "attempts": 1,
    "finished_at": "now",
    "error": None,
}


def run(label: str, settings: Settings, count: int) -> None:
    app = create_app(settings)
    with app.app_context():
        upgrade(revision="heads")
        latencies = []
        started = time.perf_counter()
        for n in range(count):
            t0 = time.perf_counter()
            mail, _ = mails.create_mail(
                template="job_finished", to=[f"user{n}@example.org"], context={"job": JOB}
            )
            delivery.deliver(mail.id, worker="bench")
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=20)
    print(
        f"{label:<22} {count / elapsed:8.1f} mails/s   "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms   p95 {q[18] * 1000:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = {"REDIS_URL": "redis://127.0.0.1:1/0", "TASKLANE_ENV": "testing"}
        outbox = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=f"sqlite:///{tmp}/outbox.db",
            MAIL_OUTBOX_DIR=f"{tmp}/outbox",
            **base,
        )
        run("outbox (.eml)", outbox, args.mails)
        with smtp_server(Path(tmp) / "smtp") as server:
            smtp = Settings(
                _env_file=None,  # type: ignore[call-arg]
                DATABASE_URL=f"sqlite:///{tmp}/smtp.db",
                **base,
                **server.env(),
            )
            run("smtp starttls+auth", smtp, args.mails)


if __name__ == "__main__":
    main()
