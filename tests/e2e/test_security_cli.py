"""`sensorium serve` with TLS and tokens, called by the CLI as a user would; and no token or
password ever reaches its logs or metrics."""

from __future__ import annotations

import threading
import urllib.request

import certs
import testkit

TOKEN = "5e0c1a9b7d3f2e4a6c8b0d1f3e5a7c9b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1a"
WRONG_TOKEN = "0e0c1a9b7d3f2e4a6c8b0d1f3e5a7c9b2d4f6e8a0c1b3d5f7e9a2c4b6d8f0e1b"
PASSWORD = "correct-horse-battery-staple-42"
WRONG_PASSWORD = "Tr0ub4dor&3-wrong-guess"


def test_tls_and_tokens_through_the_cli_and_nothing_secret_in_logs_or_metrics(tmp_path):
    ca = certs.authority("Sensorium test CA")
    cert, key = certs.issue(ca, "sensorium-server").write(tmp_path, "server")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# the test client\n{TOKEN} pdf\n")
    tokens.chmod(0o600)
    token_file, wrong_token_file = tmp_path / "token", tmp_path / "wrong-token"
    token_file.write_text(TOKEN + "\n")
    wrong_token_file.write_text(WRONG_TOKEN + "\n")
    pdf = tmp_path / "secret.pdf"
    pdf.write_bytes(testkit.make_pdf(["Quarterly numbers, for the board only."],
                                     user_password=PASSWORD))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")

    env = testkit.cli_env(
        SENSORIUM_SERVICES="pdf", SENSORIUM_PDF__WORKERS="1", SENSORIUM_LOG_LEVEL="DEBUG",
        SENSORIUM_TLS__CERT_FILE=str(cert), SENSORIUM_TLS__KEY_FILE=str(key),
        SENSORIUM_AUTH__TOKENS_FILE=str(tokens),
    )
    client_env = testkit.cli_env()
    log: list[str] = []
    with testkit.serve(env) as server:
        # Drain the server's stderr while it runs: a full pipe would block its logging.
        assert server.process.stderr is not None
        reader = threading.Thread(target=lambda: log.extend(server.process.stderr), daemon=True)
        reader.start()
        secure = ["--server", server.target, "--tls-ca", str(ca_file)]

        done = testkit.run_cli("pdf", str(pdf), *secure, "--token-file", str(token_file),
                               "--password-file", str(password_file), env=client_env)
        assert done.returncode == 0, done.stderr
        assert "Quarterly numbers" in done.stdout

        wrong = testkit.run_cli("pdf", str(pdf), *secure, "--token-file", str(token_file),
                                "--password", WRONG_PASSWORD, env=client_env)
        assert wrong.returncode == 1 and "PDF_PASSWORD_INCORRECT" in wrong.stderr

        for token_args in ([], ["--token-file", str(wrong_token_file)]):
            refused = testkit.run_cli("pdf", str(pdf), *secure, *token_args,
                                      "--password", PASSWORD, env=client_env)
            assert refused.returncode == 1
            assert "UNAUTHENTICATED" in refused.stderr and "Traceback" not in refused.stderr

        # The client will not send a token over plaintext unless told the link is protected.
        plaintext = testkit.run_cli("pdf", str(pdf), "--server", server.target, "--token-file",
                                    str(token_file), "--password", PASSWORD, "--timeout", "5",
                                    env=client_env)
        assert plaintext.returncode == 1 and "FAILED_PRECONDITION" in plaintext.stderr
        assert "--insecure" in plaintext.stderr and "Traceback" not in plaintext.stderr
        insecure = testkit.run_cli("pdf", str(pdf), "--server", server.target, "--token-file",
                                   str(token_file), "--insecure", "--password", PASSWORD,
                                   "--timeout", "5", env=client_env)
        assert insecure.returncode == 1 and "UNAVAILABLE" in insecure.stderr

        health = testkit.run_cli("health", *secure, env=client_env)
        assert (health.returncode, health.stdout.strip()) == (0, "overall: SERVING")

        usage = testkit.run_cli("pdf", str(pdf), "--tls-ca", str(ca_file), env=client_env)
        assert usage.returncode == 2 and "add --server" in usage.stderr

        metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            metrics = response.read().decode()
    reader.join(10)
    text = server.log + "".join(log)

    assert "TLS on" in text and "client=token:" in text
    assert 'code="UNAUTHENTICATED"' in metrics and 'code="INVALID_ARGUMENT"' in metrics
    for secret in (TOKEN, WRONG_TOKEN, PASSWORD, WRONG_PASSWORD):
        assert secret not in text, "a secret reached the server's log"
        assert secret not in metrics, "a secret reached the metrics"
