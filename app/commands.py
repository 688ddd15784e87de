"""Flask CLI commands: `flask keys ...` for API keys."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app.services import api_keys

keys = AppGroup("keys", help="Create, list and revoke API keys.")


@keys.command("create")
@click.argument("name")
def create_key(name: str) -> None:
    """Create an API key called NAME and print it (it is shown only once)."""
    key, token = api_keys.create(name)
    click.echo(token)
    click.echo(
        f"created key {key.prefix}... named {name!r}; store it now, it is not shown again", err=True
    )


@keys.command("list")
def list_keys() -> None:
    """List API keys (prefixes only)."""
    for key in api_keys.list_keys():
        state = "revoked" if key.revoked_at else "active"
        click.echo(f"{key.prefix}...\t{key.name}\t{state}\t{key.created_at:%Y-%m-%d %H:%M}")


@keys.command("revoke")
@click.argument("prefix")
def revoke_key(prefix: str) -> None:
    """Revoke the key(s) whose printed prefix is PREFIX."""
    count = api_keys.revoke(prefix)
    if not count:
        raise click.ClickException(f"no active key with prefix {prefix!r}; see 'flask keys list'")
    click.echo(f"revoked {count} key(s)")


def register_commands(app: Flask) -> None:
    app.cli.add_command(keys)
