"""Response schemas generated from their models, so a column is declared once.

marshmallow-sqlalchemy reads each column's type, length and nullability; a schema names
only the columns it leaves out and the fields a model does not store. So a column added to
one of these models is served unless its schema excludes it: exclude anything internal or
secret there (foreign keys are left out unless a schema sets `include_fk`).
"""

from __future__ import annotations

from typing import Any

from marshmallow_sqlalchemy import SQLAlchemyAutoSchema


class ModelSchema(SQLAlchemyAutoSchema[Any]):
    # Typed here once: the library's own __init__ is unannotated.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
