"""What the whole process needs: the environment kind, Flask's key, extra task modules."""

from __future__ import annotations

from typing import Annotated
from typing import Literal

from pydantic import BeforeValidator
from pydantic import SecretStr

from app.settings.base import Concern
from app.settings.base import env
from app.settings.base import split_commas


class CoreSettings(Concern):
    environment: Literal["development", "testing", "production"] = env(
        "TASKLANE_ENV", "development"
    )
    # Only used to sign Flask's own cookies; development gets a throwaway value.
    secret_key: SecretStr | None = env("SECRET_KEY")
    # Extra task modules to load, comma separated (the test suite adds its own).
    extra_task_modules: Annotated[list[str], BeforeValidator(split_commas)] = env(
        "TASKLANE_EXTRA_TASK_MODULES", default_factory=list
    )
