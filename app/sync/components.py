"""Extractors and warehouses as run configuration: described where a run is planned, built
again where it runs, with secrets taken from that process's own environment."""

from __future__ import annotations

import inspect
from typing import Any

from app.errors import ConfigurationError
from app.extractors.base import TabularExtractor
from app.extractors.ratelimit import RateLimiter
from app.registry import EXTRACTORS, WAREHOUSES, extractor_class, name_of, warehouse_class
from app.settings import connection_variable, get_settings
from app.sync.plan import ComponentConfig
from app.warehouses import Warehouse, warehouse_for_url
from app.warehouses.failures import parse_url

ExtractorArg = type[TabularExtractor] | TabularExtractor
WarehouseArg = type[Warehouse] | Warehouse | None


def extractor_config(arg: ExtractorArg) -> ComponentConfig:
    """How a worker builds ``arg`` again: a class is built bare, an instance from its params.

    Raises:
        ConfigurationError: the class is not registered, or the instance cannot travel.
    """
    if isinstance(arg, type):
        return ComponentConfig(kind=name_of(EXTRACTORS, arg))
    kind = name_of(EXTRACTORS, type(arg))
    return ComponentConfig(kind=kind, params=arg.to_params(),
                           connection=getattr(arg, "connection", "default"))


def warehouse_config(arg: WarehouseArg) -> ComponentConfig:
    """How a worker builds ``arg`` again (None: the worker's own ``WAREHOUSE_URL``)."""
    if arg is None:
        return ComponentConfig(kind=None)
    if isinstance(arg, type):
        return ComponentConfig(kind=name_of(WAREHOUSES, arg))
    return ComponentConfig(kind=name_of(WAREHOUSES, type(arg)), params=arg.to_params())


def build_extractor(config: ComponentConfig, rate_limiter: RateLimiter | None = None) -> TabularExtractor:
    """The extractor ``config`` describes, with the connection's secrets from this process."""
    if config.kind is None:
        raise ConfigurationError("a run must name its extractor")
    cls = extractor_class(config.kind)
    accepted = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = dict(config.params)
    if config.connection != "default" or "connection" in accepted:
        kwargs["connection"] = config.connection
    if rate_limiter is not None and "rate_limiter" in accepted:
        kwargs["rate_limiter"] = rate_limiter
    return cls(**kwargs)


def build_warehouse(config: ComponentConfig) -> Warehouse:
    """The warehouse ``config`` describes; a password comes from this process's environment.

    Raises:
        ConfigurationError: the warehouse needs a password this process does not have.
    """
    params = dict(config.params)
    url = params.pop("url", None)
    needs_password = params.pop("password", False)
    if url is not None and needs_password:
        url = _with_password(url, config.connection)
    if config.kind is None:
        return warehouse_for_url(url, params.get("schema"))
    cls = warehouse_class(config.kind)
    return cls(url, **params) if url is not None else cls(**params)


def _with_password(url: str, connection: str) -> str:
    parsed = parse_url(url)
    password = get_settings().connection_secret(connection, "WAREHOUSE_PASSWORD")
    if password is None and connection == "default":
        own = parse_url(get_settings().warehouse_url)
        if own.set(password=None) == parsed.set(password=None) or _same_database(own, parsed):
            password = own.password
    if password is None:
        raise ConfigurationError(
            f"{connection_variable(connection, 'WAREHOUSE_PASSWORD')} is not set: this worker "
            f"needs the password of {parsed.set(password=None).render_as_string()}")
    return parsed.set(password=password).render_as_string(hide_password=False)


def _same_database(a: Any, b: Any) -> bool:
    return bool((a.host, a.port, a.database, a.username) == (b.host, b.port, b.database, b.username))
