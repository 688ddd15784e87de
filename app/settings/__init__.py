"""Tasklane's settings by concern: one pure-pydantic model per concern, composed by `config.py`.

Nothing here imports the rest of Tasklane, and `app/__init__.py` imports its parts only when
the factory runs, so `import config` loads no Flask app, Celery or extension. Provider specs
and schedule checks live here too, so validation needs nothing from the app.
"""

from __future__ import annotations

from app.settings.api import ApiSettings
from app.settings.base import Concern
from app.settings.base import env_names
from app.settings.base import reveal
from app.settings.broker import BrokerSettings
from app.settings.core import CoreSettings
from app.settings.dashboard import DashboardSettings
from app.settings.database import DatabaseSettings
from app.settings.dataset import DatasetSettings
from app.settings.generation import GenerationSettings
from app.settings.ledger import LedgerSettings
from app.settings.mail import MailSettings
from app.settings.observability import ObservabilitySettings
from app.settings.operations import OperationsSettings
from app.settings.tracing import TracingSettings

__all__ = [
    "ApiSettings",
    "BrokerSettings",
    "Concern",
    "CoreSettings",
    "DashboardSettings",
    "DatabaseSettings",
    "DatasetSettings",
    "GenerationSettings",
    "LedgerSettings",
    "MailSettings",
    "ObservabilitySettings",
    "OperationsSettings",
    "TracingSettings",
    "env_names",
    "reveal",
]
