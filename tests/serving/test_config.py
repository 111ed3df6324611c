"""Configuration layers: defaults < file < environment < flags; typos are errors."""

from __future__ import annotations

import pytest

from serving.config import ConfigError, load_config


def test_layers_override_in_order(tmp_path):
    path = tmp_path / "toitsu.toml"
    path.write_text('[server]\nport = 6000\nhost = "0.0.0.0"\n[batching]\nmax_batch = 4\n[audio]\nmax_seconds = 30\n')
    config = load_config(
        path,
        {"TOITSU_SERVER__PORT": "7000", "TOITSU_SPEAKER__USE_VAD": "false", "HOME": "/x"},
        {"server.port": "8000", "gallery.snapshot_every": "7"},
    )
    assert config.server.port == 8000 and config.server.host == "0.0.0.0"
    assert config.batching.max_batch == 4 and config.audio.max_seconds == 30.0
    assert config.speaker.use_vad is False and config.gallery.snapshot_every == 7
    assert load_config().server.port == 50051


def test_the_postgres_gallery_backend_is_configured_in_the_gallery_section():
    config = load_config(overrides={"gallery.backend": "postgres", "gallery.dsn": "host=db dbname=toitsu"})
    assert (config.gallery.backend, config.gallery.dsn) == ("postgres", "host=db dbname=toitsu")
    assert load_config().gallery.backend == "sqlite"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"server.prot": "1"}, "unknown key server.prot"),
        ({"sever.port": "1"}, "unknown config section 'sever'"),
        ({"server.port": "fifty"}, "server.port"),
        ({"speaker.use_vad": "maybe"}, "not a boolean"),
        ({"port": "1"}, "section.key"),
        ({"backups.interval_seconds": "3600"}, "paths.backups is not"),
        ({"backups.keep": "-1"}, r"\[backups\] interval_seconds, keep and max_age_seconds must be >= 0"),
        ({"gallery.backend": "mysql"}, r'\[gallery\] gallery.backend must be "sqlite" or "postgres"'),
        ({"gallery.backend": "postgres"}, r'\[gallery\] gallery.backend = "postgres" needs gallery.dsn'),
        ({"gallery.dsn": "host=db"}, r'\[gallery\] gallery.dsn is set but gallery.backend is "sqlite"'),
    ],
)
def test_mistakes_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_unreadable_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport=")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(bad)


def test_backups_section():
    assert load_config().backups.interval_seconds == 0  # off unless asked for
    config = load_config(
        overrides={"paths.backups": "/b", "backups.interval_seconds": "60", "backups.max_age_seconds": "7200"}
    )
    assert (config.backups.interval_seconds, config.backups.keep, config.backups.max_age_seconds) == (60, 7, 7200)
    assert config.backups.verify_at_start is True
