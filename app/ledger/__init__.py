"""The job ledger: the only code that writes the `jobs` and `job_attempts` tables.

Callers use these functions, nothing else writes job state:

- API side (`app.ledger.requests`): `create`, `cancel`, `requeue`.
- Worker side (`app.ledger.transitions`): `begin_attempt`, `record_progress`,
  `cancel_requested`, `record_success`, `record_failure`, `record_retry`,
  `record_cancelled`, `record_sentry_event`.
- Delivery (`app.ledger.outbox`): `publish`, `confirm`, `relay_once`, `Relay`.
- Leases (`app.ledger.leases`): `hold`, `release`, `renew`, `expire`, `recover_expired`.
- Reserved, never started (`app.ledger.reserved`, Redis): `stale_reserved_ids`, `claim`.

`app.ledger.starting` holds the statements behind `begin_attempt`.

Which state may follow which is `app.ledger.states`; the statements, built once per
dialect, are `app.ledger.statements` (PostgreSQL's plain SQL) and
`app.ledger.core_statements` (SQLAlchemy Core: SQLite, and the rare paths of both).
"""
