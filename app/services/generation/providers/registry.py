"""Providers by name, built once per process from settings (clients never cross a fork)."""

from __future__ import annotations

import os
import threading

import httpx2

from app.services.errors import JobError
from app.services.generation.providers.base import Provider
from app.services.generation.providers.offline import OfflineProvider
from app.services.generation.providers.transport import DrainingTransport
from app.settings.generation import OFFLINE
from config import Settings

# Generous: a gevent worker runs hundreds of generations at once over one client.
CLIENT_LIMITS = httpx2.Limits(max_connections=2000, max_keepalive_connections=200)


class UnknownProvider(JobError):
    status = 422
    title = "Unknown provider"


class UnknownModel(JobError):
    status = 422
    title = "Model not offered by this provider"


class Registry:
    def __init__(self, settings: Settings) -> None:
        client = httpx2.Client(transport=DrainingTransport(limits=CLIENT_LIMITS))
        self._providers: dict[str, Provider] = {OFFLINE: OfflineProvider()}
        self._models: dict[str, tuple[str, ...]] = {OFFLINE: OfflineProvider.models}
        for name, spec in settings.generation.providers.items():
            # The `openai` package takes a second or more to import: only when one is used.
            from app.services.generation.providers.openai import OpenAICompatible

            self._providers[name] = OpenAICompatible(name, spec, client)
            self._models[name] = spec.models

    def names(self) -> list[str]:
        return sorted(self._providers)

    def models(self, name: str) -> tuple[str, ...]:
        """Models `name` offers (empty: any); UnknownProvider for a name not configured."""
        if name not in self._models:
            raise UnknownProvider(
                f"no provider named {name!r}; configured: {', '.join(self.names())} "
                "(add one to GENERATION_PROVIDERS)"
            )
        return self._models[name]

    def resolve(self, name: str, model: str) -> Provider:
        """The provider `name` after checking it offers `model`; 422 errors otherwise."""
        offered = self.models(name)
        provider = self._providers[name]
        if offered and model not in offered:
            raise UnknownModel(f"provider {name!r} offers {', '.join(offered)}, not {model!r}")
        return provider


_registries: dict[tuple[int, int], Registry] = {}
_lock = threading.Lock()


def registry(settings: Settings) -> Registry:
    key = (os.getpid(), id(settings))
    with _lock:
        if key not in _registries:
            _registries[key] = Registry(settings)
        return _registries[key]
