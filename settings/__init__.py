"""Tasklane's settings by concern: one pure-pydantic model per concern, composed by `config.py`.

A top-level package beside `config.py`, not under `app/`: nothing here imports Tasklane's
code, and importing it never runs `app/__init__.py` (which imports the whole app, whose
modules import `config`: under `app/` the two would import each other). Provider specs and
schedule checks live here too, so validation needs nothing from the app.
"""

from __future__ import annotations

from settings.api import ApiSettings
from settings.base import Concern
from settings.base import env_names
from settings.base import reveal
from settings.broker import BrokerSettings
from settings.core import CoreSettings
from settings.dashboard import DashboardSettings
from settings.database import DatabaseSettings
from settings.dataset import DatasetSettings
from settings.generation import GenerationSettings
from settings.ledger import LedgerSettings
from settings.mail import MailSettings
from settings.observability import ObservabilitySettings
from settings.operations import OperationsSettings
from settings.tracing import TracingSettings

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
