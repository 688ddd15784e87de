"""Operations: queue status and monitor, readiness, beat status, retention and reports."""
