"""Where server settings come from: flags over DISPATCH_* variables over the config file."""
import pytest

from dispatch.errors import Rejected
from dispatch.handlers.adapters import handler_groups
from dispatch.settings import load_settings


def test_flags_override_the_environment_which_overrides_the_config_file(tmp_path, monkeypatch):
    config = tmp_path / "server.yaml"
    config.write_text("bus: amqp://file/\nstore: postgresql://file/db\nport: 9000\nrole: handlers\n")
    monkeypatch.setenv("DISPATCH_STORE", "postgresql://env/db")
    monkeypatch.setenv("DISPATCH_PORT", "9100")
    settings = load_settings(config, port=9200)
    assert settings.bus == "amqp://file/"
    assert settings.store == "postgresql://env/db"
    assert settings.port == 9200
    assert settings.role == "handlers"


def test_a_config_file_that_is_not_a_mapping_is_refused(tmp_path):
    config = tmp_path / "server.yaml"
    config.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_settings(config)


def test_handler_groups_follow_the_role(tmp_path):
    assert handler_groups(load_settings(role="gateway")) == set()
    assert handler_groups(load_settings(role="handlers", handlers="runs, images")) == {"runs", "images"}
    assert "functions" in handler_groups(load_settings())
    with pytest.raises(Rejected, match="unknown handler groups builds"):
        handler_groups(load_settings(handlers="builds"))
    with pytest.raises(Rejected, match="unknown role"):
        handler_groups(load_settings(role="everything"))
