"""Secrets and serialisation without a server: URL masking, JSON only, TLS options from the URL."""

from __future__ import annotations

import ssl

import pytest
import redis

from app.redact import mask_url
from app.settings import Settings
from broker.config import celery_config, redis_py_url, tls_defaults
from broker.status import redis_client


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
    ("rediss://:s3cret@host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem",
     "rediss://:***@host:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"),
    ("redis://default:s3cret@host/0", "redis://default:***@host/0"),
    ("postgresql://root:s3cret@db:5432/test", "postgresql://root:***@db:5432/test"),
    ("postgresql+psycopg://root:s3cret@db/test", "postgresql+psycopg://root:***@db/test"),
    # a password holding '@' or ':', raw or percent-encoded
    ("redis://:s3@cret@host/0", "redis://:***@host/0"),
    ("postgresql://root:s3:cr:et@db/test", "postgresql://root:***@db/test"),
    ("postgresql://root:s3%40cret%3A@db/test", "postgresql://root:***@db/test"),
    # characters that end the authority for URL parsers: mask up to the last '@'
    ("redis://:s3/cret@host/0", "redis://:***@host/0"),
    ("redis://:s3#cret@host/0", "redis://:***@host/0"),
    ("redis://:s3?cret@host/0", "redis://:***@host/0"),
    # an empty password, a password in the query string
    ("redis://user:@host/0", "redis://user:***@host/0"),
    ("redis://host/0?password=s3cret&db=1", "redis://host/0?password=***&db=1"),
    ("postgresql://db/test?user=root&PASSWORD=s3cret", "postgresql://db/test?user=root&PASSWORD=***"),
    # several hosts, a port that is not a number
    ("postgresql://root:s3cret@h1:5432,h2:5433/test", "postgresql://root:***@h1:5432,h2:5433/test"),
    ("postgresql://root:s3cret@db:notaport/test", "postgresql://root:***@db:notaport/test"),
])
def test_passwords_are_masked(url, masked):
    assert mask_url(url) == masked
    assert "s3" not in mask_url(url).replace("ssl_", "")


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379/0", "postgresql://root@db/test", "rediss://host:6380/0",
    "sqlite:///data/warehouse.db", "redis://host/0?ssl_ca_certs=/etc/ca.pem", "not a url",
])
def test_urls_without_a_password_are_unchanged(url):
    assert mask_url(url) == url


def test_an_unparseable_url_is_not_echoed():
    assert mask_url("postgresql://root:s3cret@[::1/test") == "<unparseable url>"


def test_workers_and_producers_accept_json_only():
    config = celery_config(Settings())
    assert config["accept_content"] == config["result_accept_content"] == ["conveyor-json", "json"]
    assert config["task_serializer"] == config["result_serializer"] == "conveyor-json"
    assert "pickle" not in repr(config).lower()


def test_the_celery_app_refuses_pickle():
    from kombu.exceptions import ContentDisallowed
    from kombu.serialization import dumps, loads

    from broker.celery_app import celery_app

    content_type, encoding, body = dumps({"a": 1}, serializer="pickle")
    with pytest.raises(ContentDisallowed, match="pickle"):
        loads(body, content_type, encoding, accept=celery_app.conf.accept_content)


def test_a_rediss_url_verifies_the_server_unless_it_says_otherwise():
    assert tls_defaults("redis://host:6379/0") is None
    assert tls_defaults("rediss://host:6380/0") == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = celery_config(Settings(celery_broker_url="rediss://:pw@host:6380/0"))
    assert config["broker_use_ssl"] == config["redis_backend_use_ssl"] == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED}
    mixed = celery_config(Settings(celery_broker_url="redis://host/0",
                                   celery_result_backend="rediss://host/1"))
    assert mixed["broker_use_ssl"] is None
    assert mixed["redis_backend_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_the_result_backend_takes_a_bare_rediss_url(monkeypatch):
    """Celery's Redis backend refuses a rediss:// URL without ssl_cert_reqs on its own."""
    from celery import Celery

    monkeypatch.setenv("CELERY_BROKER_URL", "rediss://127.0.0.1:1/0")
    app = Celery("t", config_source=celery_config(Settings()), set_as_current=False)
    assert app.backend.connparams["ssl_cert_reqs"] == ssl.CERT_REQUIRED


@pytest.mark.parametrize(("spelling", "redis_py"), [
    ("CERT_REQUIRED", "required"), ("CERT_OPTIONAL", "optional"), ("CERT_NONE", "none"),
    ("required", "required"), ("none", "none"),
])
def test_redis_py_reads_celery_spellings_of_ssl_cert_reqs(spelling, redis_py):
    url = f"rediss://:pw@host:6380/0?ssl_cert_reqs={spelling}&ssl_ca_certs=/ca.pem"
    assert redis_py_url(url) == url.replace(spelling, redis_py)
    config = celery_config(Settings(celery_broker_url=url))
    assert config["redbeat_redis_url"] == redis_py_url(url)
    pool = redis_client(url).connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"


def test_the_cli_never_prints_local_variables_in_tracebacks():
    """Older typer releases printed every frame's locals, broker URLs and passwords included."""
    from broker.cli import cli

    assert cli.pretty_exceptions_show_locals is False
