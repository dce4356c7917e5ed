"""``conveyor sandbox``: the address it listens on, and --use-settings for the compose demo."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import sandbox
from app.settings import reload_settings
from broker.cli import cli


@pytest.fixture
def served(monkeypatch):
    """What the command would serve, instead of serving it."""
    calls = []
    monkeypatch.setattr(sandbox, "serve_forever",
                        lambda bases, config, host, port: calls.append((bases, config, host, port)))
    return calls


def test_defaults_to_loopback_and_its_own_token_and_base(served):
    result = CliRunner().invoke(cli, ["sandbox", "--rows", "10"])
    assert result.exit_code == 0, result.output
    ((bases, config, host, port),) = served
    assert (host, port) == ("127.0.0.1", 8765)
    assert config.token == "sandbox-token" and bases[0].id == "appSANDBOX0000001"


def test_use_settings_serves_the_configured_base_to_the_configured_key(served, monkeypatch):
    monkeypatch.setenv("AIRTABLE_API_KEY", "patCOMPOSEDEMO.secret")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appCOMPOSE0000001")
    reload_settings()
    result = CliRunner().invoke(cli, ["sandbox", "--use-settings", "--host", "0.0.0.0",
                                      "--rows", "10"])
    assert result.exit_code == 0, result.output
    ((bases, config, host, _),) = served
    assert host == "0.0.0.0"
    assert config.token == "patCOMPOSEDEMO.secret" and bases[0].id == "appCOMPOSE0000001"
    assert "secret" not in result.output  # the banner does not print the key it was given


def test_use_settings_without_a_key_says_what_to_set(served, monkeypatch):
    monkeypatch.delenv("AIRTABLE_API_KEY", raising=False)
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appCOMPOSE0000001")
    reload_settings()
    result = CliRunner().invoke(cli, ["sandbox", "--use-settings"])
    assert result.exit_code != 0 and not served
    assert "AIRTABLE_API_KEY" in result.output
