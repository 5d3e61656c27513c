"""Settings.from_env: which backend and which model, first match wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from database.targets import EmbeddedTarget, LakebaseTarget, UrlTarget
from graph.settings import Settings, SettingsError


def test_nothing_configured_means_embedded_under_home_and_offline_model() -> None:
    settings = Settings.from_env({"MEMORY_AGENT_HOME": "/tmp/agent-home"})
    assert settings.database == EmbeddedTarget(Path("/tmp/agent-home"))
    assert settings.model.kind == "offline"
    assert not settings.memory_required and not settings.auto_setup


def test_lakebase_autoscaling_endpoint_wins_over_everything() -> None:
    settings = Settings.from_env(
        {
            "LAKEBASE_AUTOSCALING_ENDPOINT": "projects/p/branches/b/endpoints/rw",
            "LAKEBASE_INSTANCE_NAME": "inst",
            "DATABASE_URL": "postgresql://localhost/db",
            "LAKEBASE_AGENT_MEMORY_SCHEMA": "agent_memory",
        }
    )
    assert settings.database == LakebaseTarget(
        autoscaling_endpoint="projects/p/branches/b/endpoints/rw", schema="agent_memory"
    )


def test_lakebase_project_and_branch_then_provisioned_then_url() -> None:
    autoscaling = Settings.from_env(
        {
            "LAKEBASE_AUTOSCALING_PROJECT": "p",
            "LAKEBASE_AUTOSCALING_BRANCH": "b",
            "LAKEBASE_INSTANCE_NAME": "i",
        }
    )
    assert autoscaling.database == LakebaseTarget(project="p", branch="b")
    provisioned = Settings.from_env(
        {
            "LAKEBASE_INSTANCE_NAME": "inst",
            "LAKEBASE_DATABASE_NAME": "mydb",
            "DATABASE_URL": "postgresql://x/y",
        }
    )
    assert provisioned.database == LakebaseTarget(instance_name="inst", database="mydb")
    assert Settings.from_env({"DATABASE_URL": "postgresql://x/y"}).database == UrlTarget(
        "postgresql://x/y"
    )
    assert Settings.from_env({"PGHOST": "db.internal"}).database == UrlTarget("")


def test_project_without_branch_names_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="set LAKEBASE_AUTOSCALING_BRANCH"):
        Settings.from_env({"LAKEBASE_AUTOSCALING_PROJECT": "p"})


def test_model_choices() -> None:
    assert (
        Settings.from_env({"AGENT_MODEL": "databricks-claude-sonnet-4-5"}).model.kind
        == "databricks"
    )
    openai = Settings.from_env(
        {
            "AGENT_MODEL": "openai:llama3",
            "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
            "OPENAI_API_KEY": "sk-secret-value",
        }
    ).model
    assert (openai.kind, openai.name, openai.base_url) == (
        "openai",
        "llama3",
        "http://127.0.0.1:8000/v1",
    )
    assert "sk-secret-value" not in repr(openai)  # the key never shows up in logs
    with pytest.raises(SettingsError, match="needs a model name"):
        Settings.from_env({"AGENT_MODEL": "openai:"})


def test_flags_accept_yes_no_and_reject_garbage() -> None:
    assert Settings.from_env({"MEMORY_REQUIRED": "1", "AUTO_SETUP": "true"}).memory_required
    assert not Settings.from_env({"MEMORY_REQUIRED": "off"}).memory_required
    with pytest.raises(SettingsError, match="MEMORY_REQUIRED"):
        Settings.from_env({"MEMORY_REQUIRED": "maybe"})
