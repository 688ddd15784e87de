"""Flask CLI commands: `flask keys ...` for API keys."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app.models.project import DEFAULT_PROJECT
from app.services import api_keys
from app.services import tenancy

keys = AppGroup("keys", help="Create, list and revoke API keys.")


@keys.command("create")
@click.argument("name")
@click.option(
    "--project",
    default=DEFAULT_PROJECT,
    show_default=True,
    help="The project the key sees and acts on (created if it does not exist).",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(tenancy.SCOPES),
    help="A scope to grant; repeat for several. Default: every scope but admin.",
)
def create_key(name: str, project: str, scopes: tuple[str, ...]) -> None:
    """Create an API key called NAME and print it (it is shown only once)."""
    try:
        key, token = api_keys.create(name, project=project, scopes=scopes or None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)
    click.echo(
        f"created key {key.prefix}... named {name!r} in project {project!r} with scopes "
        f"{' '.join(key.scopes)}; store it now, it is not shown again",
        err=True,
    )


@keys.command("list")
def list_keys() -> None:
    """List API keys (prefixes only) with their project and scopes."""
    for key, project in api_keys.list_keys():
        state = "revoked" if key.revoked_at else "active"
        click.echo(
            f"{key.prefix}...\t{key.name}\t{project}\t{','.join(key.scopes)}\t{state}\t"
            f"{key.created_at:%Y-%m-%d %H:%M}"
        )


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
