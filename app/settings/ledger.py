"""The job ledger (app/ledger/): durability, leases, the outbox relay, retries of its writes."""

from __future__ import annotations

from pydantic import model_validator

from app.settings.base import Concern
from app.settings.base import env


class LedgerSettings(Concern):
    # PostgreSQL: whether a job's final ledger write waits for the disk before the worker
    # acknowledges the message. Off, a server crash can lose the last ~0.6 s of finishes
    # (those jobs are later failed by the reaper, retryable); on, each job costs one fsync.
    synchronous_commit: bool = env("LEDGER_SYNCHRONOUS_COMMIT", False)
    # A started attempt's lease (app/ledger/leases.py): its process renews it every RENEW
    # seconds; TTL seconds after the last renewal the job goes back for its next attempt.
    lease_ttl: float = env("LEDGER_LEASE_TTL", 15.0, ge=2)
    lease_renew: float = env("LEDGER_LEASE_RENEW", 4.0, gt=0)
    # The outbox relay (app/ledger/outbox.py): how often it looks, and how long a published
    # job may stay unconfirmed before it is published again.
    relay_interval: float = env("LEDGER_RELAY_INTERVAL", 1.0, gt=0)
    relay_grace: float = env("LEDGER_RELAY_GRACE", 5.0, gt=0)
    # Redis brokers: a job whose message a worker reserved this long without starting it
    # (the worker died) is published again by the relay (app/ledger/reserved.py).
    reserved_grace: float = env("LEDGER_RESERVED_GRACE", 60.0, gt=0)
    # Whether API processes run a relay too (worker main processes always do).
    relay_in_api: bool = env("LEDGER_RELAY_IN_API", True)
    # A worker that cannot record a job's start hands the message back after this pause;
    # one that cannot record its outcome keeps trying this long, the message unacknowledged.
    begin_backoff: float = env("LEDGER_BEGIN_BACKOFF", 2.0, ge=0)
    finish_retry_seconds: float = env("LEDGER_FINISH_RETRY_SECONDS", 600.0, gt=0)

    @model_validator(mode="after")
    def _renew_well_within_ttl(self) -> LedgerSettings:
        if self.lease_renew * 2 > self.lease_ttl:
            raise ValueError(
                f"LEDGER_LEASE_RENEW ({self.lease_renew}s) must be at most half of "
                f"LEDGER_LEASE_TTL ({self.lease_ttl}s), so one late renewal does not "
                "let a running job's lease expire"
            )
        return self
