"""Whose request is it: forwarded identity vs client-supplied user id, by deployment."""

from __future__ import annotations

import pytest

from graph.settings import Settings, SettingsError
from serving.identity import InvalidUserId, resolve_user_id

FORWARDED = {"X-Forwarded-Email": "alice@example.com", "X-Forwarded-User": "42@7"}


@pytest.mark.parametrize(
    ("headers", "custom_inputs", "context_user", "deployed", "trusted", "expected"),
    [
        # Local development: the client says who it is; headers rehearse a deployment.
        ({}, {"user_id": "bob"}, None, False, False, "bob"),
        ({}, {}, "carol", False, False, "carol"),
        (FORWARDED, {}, None, False, False, "alice@example.com"),
        ({}, {}, None, False, False, None),
        # Deployed: only the proxy's identity, unless the caller is trusted.
        ({}, {"user_id": "mallory"}, "mallory", True, False, None),
        (FORWARDED, {"user_id": "mallory"}, None, True, False, "alice@example.com"),
        (FORWARDED, {"user_id": "mallory"}, None, True, True, "alice@example.com"),
        ({}, {}, "dave@example.com", True, True, "dave@example.com"),
        ({"x-forwarded-preferred-username": "erin"}, {}, None, True, False, "erin"),
        ({"x-forwarded-user": "42@7"}, {}, None, True, False, "42@7"),
    ],
)
def test_resolve_user_id(
    headers: dict[str, str],
    custom_inputs: dict[str, str],
    context_user: str | None,
    deployed: bool,
    trusted: bool,
    expected: str | None,
) -> None:
    assert (
        resolve_user_id(
            headers, custom_inputs, context_user, deployed=deployed, trust_client_user_id=trusted
        )
        == expected
    )


def test_untrusted_client_user_id_is_not_even_validated_when_deployed() -> None:
    assert (
        resolve_user_id({}, {"user_id": 7}, None, deployed=True, trust_client_user_id=False) is None
    )


@pytest.mark.parametrize("bad", [7, "   ", "a\x00b", "x" * 257])
def test_bad_client_user_id_is_refused_where_it_counts(bad: object) -> None:
    with pytest.raises(InvalidUserId):
        resolve_user_id({}, {"user_id": bad}, None, deployed=False, trust_client_user_id=False)


def test_serving_settings_from_databricks_apps_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABRICKS_APP_NAME": "memory-agent",
            "DATABRICKS_APP_PORT": "8080",
            "MEMORY_AGENT_TRUST_CLIENT_USER_ID": "1",
        }
    )
    assert settings.serving.deployed
    assert settings.serving.port == 8080
    assert settings.serving.host == "0.0.0.0"
    assert settings.serving.trust_client_user_id
    local = Settings.from_env({})
    assert not local.serving.deployed
    assert (local.serving.host, local.serving.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    "env",
    [{"DATABRICKS_APP_PORT": "http"}, {"MEMORY_AGENT_TRUST_CLIENT_USER_ID": "maybe"}],
)
def test_bad_serving_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)
