"""Mail templates: `app/templates/mail/NAME.txt` (subject line + text part) and `NAME.html`.

The text file starts with a `Subject: ...` line and a blank line. HTML is autoescaped, the
text part is not (it is not markup). A name missing from the context is an error, never
an empty string in a mail someone reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import StrictUndefined
from jinja2 import TemplateError
from jinja2 import select_autoescape

from app.services.mail.errors import InvalidMailContext
from app.services.mail.errors import UnknownTemplate

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "mail"
NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def available() -> list[str]:
    """Template names that have both their text and their HTML file."""
    texts = {path.stem for path in TEMPLATE_DIR.glob("*.txt")}
    return sorted(name for name in texts if (TEMPLATE_DIR / f"{name}.html").is_file())


def render(name: str, context: dict[str, Any]) -> Rendered:
    if not NAME.match(name) or name not in available():
        raise UnknownTemplate(
            f"no mail template named {name!r}; templates: {', '.join(available())}"
        )
    env = environment()
    try:
        text = env.get_template(f"{name}.txt").render(context)
        html = env.get_template(f"{name}.html").render(context)
    except TemplateError as exc:
        raise InvalidMailContext(f"template {name!r}: {exc}") from None
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise InvalidMailContext(f"template {name!r}: the text file must start with 'Subject:'")
    # One header line: folding or injected newlines never reach the message headers.
    subject = " ".join(first.removeprefix("Subject:").split())
    return Rendered(subject=subject, text=body.lstrip("\n"), html=html)
