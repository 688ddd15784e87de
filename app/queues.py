"""The queue contract: every queue Tasklane uses and the worker profile that serves it.

This is the only place queues are declared. Celery's `task_queues`, task routing, the
`-Q` lists `entrypoint.sh` starts workers with, and the README table all derive from it.

    python -m app.queues worker-args cpu   # -> -P prefork -c 2 -Q dataset
    python -m app.queues table             # the README's markdown table
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


class UnknownQueueError(LookupError):
    """A task or worker named a queue that is not declared here."""


@dataclass(frozen=True)
class Profile:
    name: str
    pool: str
    concurrency: int
    # Messages reserved per slot: 1 for long CPU jobs (none waits behind a running one), more
    # for short I/O jobs so a gevent worker never idles between waves.
    prefetch: int
    purpose: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    profile: str
    work: str


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("cpu", "prefork", 2, 1, "CPU-bound work; one process per core"),
        Profile("io", "gevent", 100, 4, "network-bound work; many greenlets in one process"),
    )
}

QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        QueueSpec(
            "dataset",
            "cpu",
            "document ingestion: parse, clean, chunk, embed, index; ledger maintenance",
        ),
        QueueSpec("generation", "io", "LLM calls against OpenAI-compatible providers"),
        QueueSpec("mail", "io", "templated mail over SMTP"),
        QueueSpec("ops_trace", "io", "shipping operation traces to observability back ends"),
    )
}


def queue(name: str) -> QueueSpec:
    """The declared queue `name`, or UnknownQueueError naming the declared ones."""
    try:
        return QUEUES[name]
    except KeyError:
        raise UnknownQueueError(
            f"queue {name!r} is not declared; declared queues: {', '.join(QUEUES)} "
            "(declare it in app/queues.py with the profile that serves it)"
        ) from None


def profile_queues(profile: str) -> list[str]:
    """Queue names a worker started with `profile` consumes; `all` means every queue."""
    if profile == "all":
        return list(QUEUES)
    if profile not in PROFILES:
        raise UnknownQueueError(
            f"worker profile {profile!r} is unknown; profiles: {', '.join(PROFILES)}, all"
        )
    return [spec.name for spec in QUEUES.values() if spec.profile == profile]


def worker_args(profile: str) -> list[str]:
    """Celery worker arguments (pool, concurrency, prefetch, queues) for a profile."""
    queues = profile_queues(profile)
    # `all` runs mixed work in one process; gevent suits the I/O majority and a dev box.
    chosen = PROFILES["io" if profile == "all" else profile]
    return [
        "-P",
        chosen.pool,
        "-c",
        str(chosen.concurrency),
        "--prefetch-multiplier",
        str(chosen.prefetch),
        "-Q",
        ",".join(queues),
    ]


def markdown_table() -> str:
    """The queue table the README shows; a test keeps the README in step with it."""
    rows = [
        "| queue | work | profile | pool | default concurrency | prefetch |",
        "|---|---|---|---|---|---|",
    ]
    for spec in QUEUES.values():
        prof = PROFILES[spec.profile]
        rows.append(
            f"| `{spec.name}` | {spec.work} | `{prof.name}` | {prof.pool} | {prof.concurrency} "
            f"| {prof.prefetch} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    usage = "usage: python -m app.queues worker-args PROFILE | profile PROFILE | table"
    try:
        if len(argv) == 2 and argv[0] == "profile":
            # For entrypoint.sh: "POOL CONCURRENCY PREFETCH QUEUES" on one line.
            print(*worker_args(argv[1])[1::2])
        elif len(argv) == 2 and argv[0] == "worker-args":
            print(" ".join(worker_args(argv[1])))
        elif argv == ["table"]:
            print(markdown_table())
        else:
            print(usage, file=sys.stderr)
            return 64
    except UnknownQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
