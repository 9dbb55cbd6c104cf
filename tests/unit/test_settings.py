from pathlib import Path

import pytest

from kb.settings import Settings, describe
from tests.conftest import REPO


def test_defaults_without_environment():
    settings = Settings.from_env(environ={})
    assert settings.corpus_dir == Path("corpus")
    assert settings.index_dir == Path("index")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.model == "all-MiniLM-L6-v2"


def test_environment_overrides_defaults_and_arguments_override_environment():
    env = {"KB_CORPUS_DIR": "/data/docs", "KB_PORT": "9001", "KB_CHUNK_TOKENS": "200", "KB_MODEL": "/models/x"}
    settings = Settings.from_env(environ=env, port=9002)
    assert settings.corpus_dir == Path("/data/docs")
    assert settings.port == 9002
    assert settings.chunk_tokens == 200
    assert settings.model == "/models/x"


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"KB_PORT": "eighty"}, "KB_PORT must be a whole number"),
        ({"KB_PORT": "70000"}, "KB_PORT must be between"),
        ({"KB_CHUNK_TOKENS": "4"}, "KB_CHUNK_TOKENS must be at least"),
        ({"KB_CHUNK_OVERLAP": "500"}, "KB_CHUNK_OVERLAP must be between"),
        ({"KB_ENCODER": "tensorrt"}, "KB_ENCODER must be one of auto, torch, onnx"),
        ({"KB_DEVICE": "gpu"}, "KB_DEVICE must be auto, cpu, cuda, cuda:N or mps"),
        ({"KB_DEVICE": "cuda:x"}, "KB_DEVICE must be"),
    ],
)
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(ValueError, match=fragment):
        Settings.from_env(environ=env)


def test_encoder_settings_and_where_exports_go(tmp_path, monkeypatch):
    chosen = Settings.from_env(environ={"KB_ENCODER": "onnx", "KB_DEVICE": "cuda:1",
                                        "KB_ENCODER_CACHE": str(tmp_path / "exports")})
    assert (chosen.encoder, chosen.device, chosen.encoder_folder) == ("onnx", "cuda:1", tmp_path / "exports")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert Settings.from_env(environ={}).encoder_folder == tmp_path / "cache" / "kb" / "encoders"


def test_the_configuration_page_documents_every_setting():
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [env for _, env, _, _ in describe() if f"`{env}`" not in page]
    assert not missing, f"docs/configuration.md does not document {missing}"
