"""The CLI as a user runs it: `sensorium serve` in a subprocess, then client commands."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pymupdf
import pytest

import testkit


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return testkit.run_cli(*args, env=env or _env(), timeout=timeout)


_env = testkit.cli_env


@pytest.fixture(scope="module")
def two_page_pdf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "two.pdf"
    doc = pymupdf.open()
    for text in ("First page says hello.", "Second page says goodbye."):
        doc.new_page().insert_text((72, 72), text)
    doc.set_metadata({"title": "Two pages"})
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def server():
    with testkit.serve(_env(SENSORIUM_SERVICES="pdf", SENSORIUM_PDF__WORKERS="1")) as serving:
        ports = {"port": serving.port, "health": serving.health_port,
                 "metrics": serving.metrics_port}
        yield serving.process, ports


def test_pdf_through_a_running_server(server, two_page_pdf):
    _, ports = server
    result = run("pdf", str(two_page_pdf), "--server", f"127.0.0.1:{ports['port']}")
    assert result.returncode == 0, result.stderr
    pages = result.stdout.split("\f")
    assert "First page says hello." in pages[0]
    assert "Second page says goodbye." in pages[1]


def test_pdf_json_is_the_protobuf_json_mapping(server, two_page_pdf):
    _, ports = server
    result = run("pdf", str(two_page_pdf), "--pages", "2", "--json",
                 "--server", f"127.0.0.1:{ports['port']}")
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["metadata"]["title"] == "Two pages"
    assert response["metadata"]["pageCount"] == 2
    assert [p["pageNumber"] for p in response["pages"]] == [2]


def test_failures_are_one_line_with_status_and_reason(server, tmp_path):
    _, ports = server
    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_bytes(b"just some text, not a PDF\n" * 10)
    result = run("pdf", str(not_pdf), "--server", f"127.0.0.1:{ports['port']}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "INVALID_ARGUMENT PDF_UNREADABLE" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_command_exit_codes(server):
    _, ports = server
    ok = run("health", "--server", f"127.0.0.1:{ports['health']}")
    assert (ok.returncode, ok.stdout.strip()) == (0, "overall: SERVING")
    pdf = run("health", "--server", f"127.0.0.1:{ports['health']}",
              "--service", "sensorium.pdf.v1.PdfService")
    assert pdf.returncode == 0
    unknown = run("health", "--server", f"127.0.0.1:{ports['health']}", "--service", "nope")
    assert unknown.returncode == 1
    down = run("health", "--server", "127.0.0.1:1", "--timeout", "1")
    assert down.returncode == 2


def test_health_json_gives_the_status_of_each_service_asked(server):
    _, ports = server
    target = f"127.0.0.1:{ports['health']}"
    both = run("health", "--server", target, "--json", "--service", "", "--service",
               "sensorium.pdf.v1.PdfService")
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout) == {
        "server": target, "services": {"overall": "SERVING", "sensorium.pdf.v1.PdfService": "SERVING"}}
    # The embedding service is not hosted here: one name not SERVING fails the whole check.
    mixed = run("health", "--server", target, "--json", "--service", "liveness", "--service",
                "sensorium.embedding.v1.EmbeddingService")
    assert mixed.returncode == 1
    assert json.loads(mixed.stdout)["services"] == {
        "liveness": "SERVING", "sensorium.embedding.v1.EmbeddingService": "SERVICE_UNKNOWN"}
    down = run("health", "--server", "127.0.0.1:1", "--timeout", "1", "--json")
    assert down.returncode == 2
    answer = json.loads(down.stdout)
    assert answer["server"] == "127.0.0.1:1" and answer["error"].startswith("unreachable (UNAVAILABLE")


def test_metrics_endpoint_counts_the_calls(server, two_page_pdf):
    import urllib.request

    _, ports = server
    run("pdf", str(two_page_pdf), "--server", f"127.0.0.1:{ports['port']}")
    body = urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5).read()
    assert b'sensorium_pdf_documents_total{outcome="ok"}' in body
    assert b'method="/sensorium.pdf.v1.PdfService/ExtractDocument"' in body


def test_pdf_images_use_the_stream_and_every_page_is_printed_in_order(server, tmp_path):
    """With --images the CLI streams (pages arrive in batches) and saves the images."""
    _, ports = server
    path = tmp_path / "twelve.pdf"
    path.write_bytes(testkit.make_pdf([f"Streamed page {i}." for i in range(1, 13)], image_pixels=64))
    images = tmp_path / "images"
    address = f"127.0.0.1:{ports['port']}"
    result = run("pdf", str(path), "--images", str(images), "--server", address)
    assert result.returncode == 0, result.stderr
    pages = result.stdout.split("\f")[:-1]
    assert [page.strip() for page in pages] == [f"Streamed page {i}." for i in range(1, 13)]
    assert [p.name for p in images.iterdir()] == ["page0001-00.png"]
    result = run("pdf", str(path), "--images", str(images), "--json", "--server", address)
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert [p["pageNumber"] for p in response["pages"]] == list(range(1, 13))
    assert response["summary"]["imagesExtracted"] == 1


def test_pdf_in_process_without_a_server(two_page_pdf):
    result = run("pdf", str(two_page_pdf))
    assert result.returncode == 0, result.stderr
    assert "Second page says goodbye." in result.stdout


def test_unknown_setting_stops_serve():
    result = run("serve", env=_env(SENSORIUM_ADRESS="127.0.0.1:0"))
    assert result.returncode == 2
    assert "did you mean SENSORIUM_ADDRESS?" in result.stderr


def test_sigterm_stops_serve_with_exit_zero():
    env = _env(SENSORIUM_SERVICES="pdf", SENSORIUM_PDF__WORKERS="1", SENSORIUM_METRICS_PORT="-1")
    with testkit.serve(env) as serving:
        serving.process.send_signal(signal.SIGTERM)
        assert serving.process.wait(30) == 0
        assert "Traceback" not in (serving.process.stderr.read() if serving.process.stderr else "")


def test_pdf_password_from_a_file_and_a_wrong_one(server, tmp_path):
    _, ports = server
    secret = tmp_path / "password.txt"
    secret.write_text("view\n")
    encrypted = tmp_path / "r6.pdf"
    encrypted.write_bytes(testkit.make_r6_pdf(3, user_password="view", owner_password="master"))
    target = f"127.0.0.1:{ports['port']}"
    opened = run("pdf", str(encrypted), "--password-file", str(secret), "--pages", "1-2", "--server", target)
    assert opened.returncode == 0, opened.stderr
    assert [page.strip() for page in opened.stdout.split("\f")] == ["Page 1", "Page 2", ""]
    wrong = run("pdf", str(encrypted), "--password", "nope", "--server", target)
    assert wrong.returncode == 1
    assert "INVALID_ARGUMENT PDF_PASSWORD_INCORRECT" in wrong.stderr


def test_in_process_the_cli_runs_the_engine_itself_and_says_how_to_change_a_limit(two_page_pdf, server):
    _, ports = server
    remote = run("pdf", str(two_page_pdf), "--json", "--server", f"127.0.0.1:{ports['port']}")
    local = run("pdf", str(two_page_pdf), "--json", env=_env(SENSORIUM_PDF__WORKERS="1"))
    assert local.returncode == 0, local.stderr
    strip = lambda r: {k: v for k, v in json.loads(r.stdout).items() if k != "summary"}  # noqa: E731
    assert strip(local) == strip(remote)  # the same response, made without a server

    limited = run("pdf", str(two_page_pdf), env=_env(SENSORIUM_PDF__MAX_PAGES="1"))
    assert limited.returncode == 1
    assert limited.stderr.startswith("sensorium: error: INVALID_ARGUMENT PDF_TOO_MANY_PAGES:")
    assert "to change the limit, set SENSORIUM_PDF__MAX_PAGES" in limited.stderr
