import pytest
from pydantic import ValidationError

from sensorium.settings import Settings, known_variables, unknown_variables


def test_defaults_operators_rely_on():
    settings = Settings()
    assert settings.address == "[::]:50051"
    assert settings.services == ["pdf", "transcription", "embedding", "document", "media"]
    assert settings.device == "auto"
    assert settings.profile == "production"


def test_comma_list_and_nested_groups(monkeypatch):
    monkeypatch.setenv("SENSORIUM_SERVICES", " PDF, embedding,pdf ")
    monkeypatch.setenv("SENSORIUM_PDF__WORKERS", "3")
    monkeypatch.setenv("SENSORIUM_EMBEDDING__MODEL", "RN50")
    monkeypatch.setenv("SENSORIUM_METRICS_PORT", "9999")
    settings = Settings()
    assert settings.services == ["pdf", "embedding"]
    assert settings.pdf.workers == 3
    assert settings.embedding.model == "RN50"
    assert settings.metrics_port == 9999


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("SENSORIUM_ADRESS", "SENSORIUM_ADDRESS"),  # a mistyped top-level name
        ("SENSORIUM_PDF__WORKRS", "SENSORIUM_PDF__WORKERS"),  # a mistyped nested name
        ("SENSORIUM_NOPE", None),
    ],
)
def test_unknown_variables_fail_start_up(monkeypatch, name, hint):
    monkeypatch.setenv(name, "1")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert f"unknown setting {name}" in str(error.value)
    if hint:
        assert f"did you mean {hint}?" in str(error.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("SENSORIUM_SERVICES", "pdf,video"), ("SENSORIUM_DEVICE", "tpu"),
     ("SENSORIUM_PDF__WORKERS", "-1"), ("SENSORIUM_SERVICES", " , ")],
)
def test_bad_values_are_rejected(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_every_variable_is_documented():
    variables = known_variables()
    assert "SENSORIUM_TRANSCRIPTION__MODEL" in variables
    assert "SENSORIUM_HEALTH_PORT" in variables
    for name, doc in variables.items():
        assert doc.split("[default:")[0].strip(), f"{name} has no documentation"


def test_unknown_variables_is_case_insensitive():
    assert unknown_variables({"sensorium_address": "x", "OTHER": "y"}) == []


def test_readme_documents_every_variable():
    from testkit import REPO

    readme = (REPO / "README.md").read_text()
    missing = [name for name in known_variables() if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_dev_profile_uses_packaged_whisper_unless_a_model_is_named(monkeypatch):
    monkeypatch.setenv("SENSORIUM_PROFILE", "dev")
    assert Settings().transcription.model == "packaged:base"
    monkeypatch.setenv("SENSORIUM_TRANSCRIPTION__MODEL", "tiny")
    assert Settings().transcription.model == "tiny"
    monkeypatch.delenv("SENSORIUM_PROFILE")
    monkeypatch.delenv("SENSORIUM_TRANSCRIPTION__MODEL")
    assert Settings().transcription.model == "base"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"SENSORIUM_TLS__CERT_FILE": "/c.pem"}, "set both SENSORIUM_TLS__CERT_FILE and"),
        ({"SENSORIUM_TLS__KEY_FILE": "/k.pem"}, "set both SENSORIUM_TLS__CERT_FILE and"),
        ({"SENSORIUM_TLS__CLIENT_CA_FILE": "/ca.pem"}, "SENSORIUM_TLS__CLIENT_CA_FILE needs TLS"),
        ({"SENSORIUM_TRACING__OTLP_ENDPOINT": "http://c:4317"}, "set SENSORIUM_TRACING__ENABLED=true"),
    ],
)
def test_half_configured_security_settings_fail_start_up(monkeypatch, variables, message):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert message in str(error.value)


def test_security_groups_read_their_variables(monkeypatch):
    monkeypatch.setenv("SENSORIUM_TLS__CERT_FILE", "/tls/tls.crt")
    monkeypatch.setenv("SENSORIUM_TLS__KEY_FILE", "/tls/tls.key")
    monkeypatch.setenv("SENSORIUM_AUTH__TOKENS_FILE", "/auth/tokens")
    monkeypatch.setenv("SENSORIUM_LIMITS__MAX_CALLS_PER_CLIENT", "4")
    monkeypatch.setenv("SENSORIUM_TRACING__ENABLED", "true")
    settings = Settings()
    assert settings.tls.enabled and str(settings.tls.key_file) == "/tls/tls.key"
    assert settings.tls.client_ca_file is None
    assert str(settings.auth.tokens_file) == "/auth/tokens" and settings.auth.protect_reflection
    assert settings.limits.max_calls_per_client == 4
    assert settings.limits.max_upload_bytes_per_client == 0
    assert settings.tracing.enabled and settings.tracing.otlp_endpoint == ""
    assert not Settings.model_fields["tls"].default.enabled, "TLS is off by default"


def test_the_document_conversion_must_end_before_the_worker_is_killed(monkeypatch):
    monkeypatch.setenv("SENSORIUM_DOCUMENT__TIMEOUT_SECONDS", "30")
    with pytest.raises(ValueError, match="SOFFICE_TIMEOUT_SECONDS \\(60\\) must be below"):
        Settings()
    monkeypatch.setenv("SENSORIUM_DOCUMENT__SOFFICE_TIMEOUT_SECONDS", "20")
    assert Settings().document.soffice_timeout_seconds == 20


def test_text_limits_reach_the_document_engine(monkeypatch):
    from sensorium.document.runtime import limits_of

    monkeypatch.setenv("SENSORIUM_TEXT__MAX_CHARS_PER_PAGE", "500")
    monkeypatch.setenv("SENSORIUM_TEXT__MAX_CHARS_PER_DOCUMENT", "9000")
    monkeypatch.setenv("SENSORIUM_DOCUMENT__SOFFICE", "/opt/lo/soffice")
    limits = limits_of(Settings())
    assert (limits.max_section_chars, limits.max_document_chars) == (500, 9000)
    assert limits.soffice == "/opt/lo/soffice"
