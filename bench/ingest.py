"""Dataset ingestion benchmark: documents/s and MB/s with one and with two worker processes.

Run from the project root:

    uv run python bench/ingest.py               # 40 documents, 20 MB in all
    uv run python bench/ingest.py --mb 40 --documents 80

A corpus of generated text (Zipf-distributed made-up words, paragraphs of sentences) is
uploaded through `app.services.dataset.documents.add`, exactly as the API does, with no
worker running. Then a prefork worker on the `dataset` queue with concurrency 1, and later
one with concurrency 2, drains it; each run uses a fresh dataset. Throughput counts from
the first document's `parsing_started_at` to the last `completed_at`, so worker start-up is
excluded. Peak memory is each pool process's VmHWM (peak resident set) read from /proc just
before the worker stops. After each run, ten three-word keyword queries are timed over
the whole dataset (exact BM25, in this process). The scaling ratio is (rate with 2) /
(rate with 1); target >= 1.7x on two free cores.

Services: the same as the test suite picks (tests/support/services.py): a claimed Redis
database index or a private redis-server, and a fresh PostgreSQL database or a temporary
SQLite file; all removed at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import string
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/ingest.py` puts bench/ on sys.path, not the project root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.extensions.ext_database import db  # noqa: E402
from app.models.dataset import Document  # noqa: E402
from app.models.dataset import IndexingStatus  # noqa: E402
from app.models.dataset import Segment  # noqa: E402
from app.services.dataset import datasets  # noqa: E402
from app.services.dataset import documents  # noqa: E402
from app.services.dataset import retrieval  # noqa: E402
from bench import support  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

TARGET_RATIO = 1.7
FINISHED = (IndexingStatus.COMPLETED, IndexingStatus.ERROR)


def corpus(documents_count: int, total_bytes: int, seed: int = 11) -> list[bytes]:
    """Documents of made-up words whose frequencies follow Zipf's law, like real text."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 11)))
        for _ in range(50_000)
    ]
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    per_document = total_bytes // documents_count
    made = []
    for _ in range(documents_count):
        paragraphs: list[str] = []
        size = 0
        while size < per_document:
            words = rng.choices(vocabulary, weights, k=rng.randint(40, 200))
            sentences = [
                " ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)
            ]
            paragraphs.append(" ".join(sentences))
            size += len(paragraphs[-1]) + 2
        made.append("\n\n".join(paragraphs).encode())
    return made


def pool_processes(main_pid: int) -> list[int]:
    return sorted(processes.children(main_pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    app: Flask, files: list[bytes], processes: int, env: dict[str, str], log_dir: Path
) -> dict[str, Any]:
    with app.app_context():
        dataset_id = datasets.create(name=f"bench-{processes}").id
        uploads = [
            documents.Upload(f"doc-{n}.txt", io.BytesIO(data)) for n, data in enumerate(files)
        ]
        documents.add(dataset_id, uploads, api_key_id=None)
    worker = WorkerProcess.celery(
        f"bench-ingest-{processes}",
        f"-P prefork -c {processes} -Q dataset",
        env=env,
        log_dir=log_dir,
    )
    worker.start(app.extensions["celery"], timeout=120)
    try:

        def finished() -> bool:
            with app.app_context():
                left = db.session.scalar(
                    select(func.count())
                    .select_from(Document)
                    .where(
                        Document.dataset_id == dataset_id,
                        Document.indexing_status.not_in(FINISHED),
                    )
                )
                db.session.rollback()
            return left == 0

        wait_for(finished, timeout=1800, interval=0.5, what=f"the run with {processes}")
        assert worker.process is not None
        pool = pool_processes(worker.process.pid)
        peaks = [peak_rss_mib(pid) for pid in pool]
        cpu = sum(cpu_seconds(pid) for pid in pool)
    finally:
        worker.stop()
    with app.app_context():
        first, last, failed = db.session.execute(
            select(
                func.min(Document.parsing_started_at),
                func.max(Document.completed_at),
                func.count().filter(Document.indexing_status == IndexingStatus.ERROR),
            ).where(Document.dataset_id == dataset_id)
        ).one()
        # Keyword retrieval over the whole dataset: queries of three words from a document.
        words = files[0].decode().split()[:30]
        timings = []
        for start in range(0, 30, 3):
            began = time.perf_counter()
            retrieval.retrieve(
                dataset_id, " ".join(words[start : start + 3]), top_k=5, mode="keyword"
            )
            timings.append(time.perf_counter() - began)
        segment_count = db.session.scalar(
            select(func.count()).select_from(Segment).where(Segment.dataset_id == dataset_id)
        )
    seconds = (last - first).total_seconds()
    megabytes = sum(len(data) for data in files) / 1e6
    return {
        "processes": processes,
        "seconds": seconds,
        "docs_per_s": len(files) / seconds,
        "mb_per_s": megabytes / seconds,
        "peaks": peaks,
        "cpu": cpu,
        "retrieve_p50": statistics.median(timings),
        "segments": segment_count,
        "failed": failed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=20.0, help="corpus size in MB (>= 20)")
    parser.add_argument("--documents", type=int, default=40)
    args = parser.parse_args()
    files = corpus(args.documents, int(args.mb * 1e6))
    total_mb = sum(len(data) for data in files) / 1e6
    print(f"corpus: {len(files)} documents, {total_mb:.1f} MB of generated text")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-")))
        found = support.start_services(stack, tmp)
        values = support.testing_values(found, DATASET_STORAGE_DIR=str(tmp / "uploads"))
        app = support.testing_app(values)
        env = support.child_env(values)
        print(f"services: {found.describe()}")
        results = [run(app, files, processes, env, tmp) for processes in (1, 2)]
    for result in results:
        peaks = ", ".join(f"{peak:.0f}" for peak in result["peaks"])
        print(
            f"{result['processes']} worker process(es): {result['seconds']:.1f} s, "
            f"{result['docs_per_s']:.2f} documents/s, {result['mb_per_s']:.2f} MB/s, "
            f"peak RSS per process [{peaks}] MiB, {result['cpu']:.1f} CPU s in the pool "
            f"({result['cpu'] / result['seconds']:.2f} cores busy), {result['failed']} failed"
        )
        print(
            f"  keyword retrieval over its {result['segments']} segments: "
            f"p50 {result['retrieve_p50'] * 1000:.0f} ms per query"
        )
    ratio = results[1]["mb_per_s"] / results[0]["mb_per_s"]
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"scaling 2 vs 1 processes: {ratio:.2f}x ({verdict} the {TARGET_RATIO}x target)")
    print(f"cores available: {os.cpu_count()}, load average now: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
