"""Templated mail: rendering, the mail log, SMTP or outbox delivery, exactly once in effect."""
