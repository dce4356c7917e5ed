"""Passwords never leave through a displayed URL."""

from app.redact import mask_url


def test_password_is_masked():
    assert mask_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("postgresql://root:pw@db/test") == "postgresql://root:***@db/test"


def test_urls_without_password_are_unchanged():
    assert mask_url("sqlite:///data/warehouse.db") == "sqlite:///data/warehouse.db"


def test_a_non_numeric_port_still_masks():
    masked = mask_url("postgresql://root:pw@db:notaport/test")
    assert "pw" not in masked and "notaport" in masked
