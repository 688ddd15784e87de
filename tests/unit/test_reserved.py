"""A job whose message a dead worker had reserved is published again (Redis brokers)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import redis
from flask import Flask
from sqlalchemy import delete

from app.extensions.ext_database import db
from app.ledger import outbox
from app.ledger import reserved
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from tests.support.jobs import job_row


def redis_broker(app: Flask) -> redis.Redis:
    """The session broker's client; the test is skipped on a broker that is not Redis."""
    client = reserved.broker_client(str(app.extensions["celery"].conf.broker_url))
    if client is None:
        pytest.skip("Redis brokers only")
    return client


def test_a_long_reserved_queued_job_is_claimed_once_and_a_started_one_never(app: Flask) -> None:
    client = redis_broker(app)
    long_ago = utcnow() - timedelta(minutes=10)
    with app.app_context():
        stuck = job_row(JobState.QUEUED, published_at=long_ago, created_at=long_ago)
        running = job_row(JobState.STARTED, published_at=long_ago)
        db.session.add_all([stuck, running])
        db.session.commit()
        ids = [stuck.id, running.id]
    tags = [f"test-{uuid.uuid4().hex}" for _ in ids]
    try:
        for tag, job_id in zip(tags, ids, strict=True):
            # What kombu's Redis transport keeps for a message a worker reserved.
            message = [{"headers": {"id": job_id, "task": "tests.echo"}}, "dataset", "dataset"]
            client.hset(reserved.UNACKED, tag, json.dumps(message))
            client.zadd(reserved.UNACKED_INDEX, {tag: time.time() - 600})

        found = reserved.stale_reserved_ids(client, older_than=60)
        assert set(ids) <= set(found)
        engine = app.extensions["ledger_engine"]
        claimed = [job["id"] for job in reserved.claim(engine, found, older_than=60)]
        assert stuck.id in claimed and running.id not in claimed
        # Claimed once: the next pass, a grace later at the earliest, leaves it alone.
        assert stuck.id not in [j["id"] for j in reserved.claim(engine, found, older_than=60)]
        with app.app_context():
            again = db.session.get(Job, stuck.id)
            assert again is not None and again.published_at > utcnow() - timedelta(minutes=1)  # type: ignore[operator]
    finally:
        client.hdel(reserved.UNACKED, *tags)
        client.zrem(reserved.UNACKED_INDEX, *tags)
        with app.app_context():
            # No queued or running row left behind for other tests' queue figures.
            db.session.execute(delete(Job).where(Job.id.in_(ids)))
            db.session.commit()


def test_a_broker_that_is_not_redis_has_no_reserved_hash() -> None:
    assert reserved.broker_client("amqp://guest@localhost//") is None
    assert isinstance(reserved.broker_client("redis://127.0.0.1:6379/0"), redis.Redis)


def test_an_overdue_retrying_job_is_claimed_once_and_a_fresh_one_never(app: Flask) -> None:
    long_ago = utcnow() - timedelta(minutes=10)
    with app.app_context():
        # Its retry was due ten minutes ago: its message is lost.
        overdue = job_row(
            JobState.RETRYING, eta=long_ago, updated_at=long_ago, published_at=long_ago
        )
        # Celery cancelled the run (no eta): due when the retry was recorded, long ago too.
        cancelled = job_row(JobState.RETRYING, eta=None, updated_at=long_ago, published_at=long_ago)
        # Due in the future, or just now: its message is still on its way.
        later = job_row(
            JobState.RETRYING,
            eta=utcnow() + timedelta(minutes=5),
            updated_at=long_ago,
            published_at=long_ago,
        )
        recent = job_row(JobState.RETRYING, eta=utcnow(), published_at=long_ago)
        jobs = [overdue, cancelled, later, recent]
        db.session.add_all(jobs)
        db.session.commit()
        ids = [job.id for job in jobs]
    engine = app.extensions["ledger_engine"]
    try:
        claimed = {job["id"]: job for job in reserved.overdue_retries(engine, older_than=60)}
        assert {overdue.id, cancelled.id} <= set(claimed)
        assert later.id not in claimed and recent.id not in claimed
        # Published without the old eta, which has passed: it runs at once.
        assert claimed[overdue.id]["eta"] is None
        assert claimed[overdue.id]["task"] == "tests.echo"
        # Claimed once: the next pass, a grace later at the earliest, leaves them alone.
        again = {job["id"] for job in reserved.overdue_retries(engine, older_than=60)}
        assert not again & set(ids)
    finally:
        with app.app_context():
            db.session.execute(delete(Job).where(Job.id.in_(ids)))
            db.session.commit()


def test_a_queued_job_whose_message_is_nowhere_is_claimed_and_one_in_the_broker_never(
    app: Flask,
) -> None:
    client = redis_broker(app)
    long_ago = utcnow() - timedelta(minutes=10)
    with app.app_context():
        lost, listed, held = (
            job_row(JobState.QUEUED, published_at=long_ago, created_at=long_ago) for _ in range(3)
        )
        fresh = job_row(JobState.QUEUED, published_at=utcnow())
        jobs = [lost, listed, held, fresh]
        db.session.add_all(jobs)
        db.session.commit()
        ids = [job.id for job in jobs]
    queue = f"test-vanished-{uuid.uuid4().hex}"
    tag = f"test-{uuid.uuid4().hex}"
    try:
        # One message waits in a (priority) list, one is reserved by a worker.
        client.lpush(f"{queue}{reserved.PRIORITY_SEP}3", json.dumps({"headers": {"id": listed.id}}))
        message = [{"headers": {"id": held.id, "task": "tests.echo"}}, "dataset", "dataset"]
        client.hset(reserved.UNACKED, tag, json.dumps(message))
        engine = app.extensions["ledger_engine"]

        claimed = [job["id"] for job in reserved.vanished(client, engine, [queue], 60)]

        assert lost.id in claimed
        assert not {listed.id, held.id, fresh.id} & set(claimed)
        # Claimed once: published again now, the next pass leaves it alone.
        assert lost.id not in [j["id"] for j in reserved.vanished(client, engine, [queue], 60)]
    finally:
        client.delete(f"{queue}{reserved.PRIORITY_SEP}3")
        client.hdel(reserved.UNACKED, tag)
        with app.app_context():
            db.session.execute(delete(Job).where(Job.id.in_(ids)))
            db.session.commit()


def test_a_relay_pass_without_the_broker_scan_leaves_a_vanished_job_to_the_next_scan(
    app: Flask,
) -> None:
    # The relay loop reads the whole backlog for vanished messages only every
    # VANISHED_SCANS-th of a grace; the passes between must neither find nor claim them.
    redis_broker(app)
    long_ago = utcnow() - timedelta(minutes=10)
    with app.app_context():
        lost = job_row(JobState.QUEUED, published_at=long_ago, created_at=long_ago)
        db.session.add(lost)
        db.session.commit()
        lost_id = lost.id
    engine = app.extensions["ledger_engine"]
    try:
        between = outbox._reserved_by_the_dead(app, engine, scan_broker=False)
        assert lost_id not in [job["id"] for job in between]
        with app.app_context():
            untouched = db.session.get_one(Job, lost_id)
            assert untouched.published_at is not None
            assert untouched.published_at < utcnow() - timedelta(minutes=5)
            db.session.rollback()
        scanned = outbox._reserved_by_the_dead(app, engine, scan_broker=True)
        assert lost_id in [job["id"] for job in scanned]
    finally:
        with app.app_context():
            db.session.execute(delete(Job).where(Job.id == lost_id))
            db.session.commit()
