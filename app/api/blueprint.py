"""The API's blueprint: flask-smorest's, plus one decorator for a view's whole contract."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

from flask_smorest import Blueprint

View = TypeVar("View", bound=Callable[..., Any])
NO_REFUSALS: Mapping[int, str] = {}


class ApiBlueprint(Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Callable[[View], View]:
        """flask-smorest's, with one schema instance per view: given a class, webargs builds
        an instance for every request (marshmallow's Schema() is most of a small body's
        parsing cost), and a schema keeps no state between loads."""
        instance = schema() if isinstance(schema, type) else schema
        decorator: Callable[[View], View] = super().arguments(instance, *args, **kwargs)
        return decorator

    def answers(
        self,
        status: int,
        schema: Any = None,
        refusals: Mapping[int, str] = NO_REFUSALS,
        *,
        takes: Any = None,
        location: str = "json",
    ) -> Callable[[View], View]:
        """Declare a view's contract in one place: what it `takes` (a body, or the query
        string with `location="query"`), its answer (`status`, `schema`), and each refusal it
        can give, by status (the problem responses every view shares, 401/403/503, are
        declared centrally by app.api.contract)."""

        def decorate(view: View) -> View:
            for code, description in refusals.items():
                view = self.alt_response(code, description=description)(view)
            view = self.response(status, schema)(view)
            return self.arguments(takes, location=location)(view) if takes is not None else view

        return decorate
