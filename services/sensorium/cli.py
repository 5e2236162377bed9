"""The `sensorium` command: run the server, call it, check its health, prepare models.

Client subcommands talk to `--server HOST:PORT`, or, without it, run the engine they need in
this process (`sensorium.local.LocalClient`: the same responses, no server). Every failure
prints one line naming the status and reason and exits non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pydantic
from google.protobuf import json_format
from google.protobuf.message import Message

from sensorium import logs
from sensorium.client import Client, ClientError
from sensorium.embedding.v1 import embedding_service_pb2 as embedding_pb
from sensorium.errors import ServiceStartError
from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb
from sensorium.registry import SERVICES
from sensorium.settings import ServiceName, Settings, known_variables
from sensorium.transcription.v1 import transcription_service_pb2 as transcription_pb

# Files up to this size go inline (unary); larger ones, or image extraction, use the stream
# (4 MiB: the request size most gRPC servers accept by default).
INLINE_LIMIT = 4 * 1024 * 1024
# Streamed pages come in batches of up to this many: one gRPC message per page costs the
# server and this client more CPU than the rest of handling the page (docs/benchmarks.md).
STREAM_PAGES_PER_MESSAGE = 32

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_START = 0, 1, 2, 3


class CliError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = asyncio.run(args.run(args))
        return result
    except ClientError as exc:
        return _fail(f"{exc.details}{_oversized_hint(exc)}")
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except ServiceStartError as exc:
        return _fail(f"cannot start the service: {exc}", EXIT_START)
    except pydantic.ValidationError as exc:
        problems = "; ".join(_validation_lines(exc))
        return _fail(f"invalid settings: {problems}", EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (`sensorium pdf x.pdf | head`): stop quietly, like other tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        return 130


def _oversized_hint(exc: ClientError) -> str:
    """What to do about a request gRPC itself refused as larger than the server's message limit:
    that refusal comes before any Sensorium code runs, so it carries no reason, and retrying
    the same request cannot succeed (docs/errors.md)."""
    details = exc.details
    refused = details.code.name == "RESOURCE_EXHAUSTED" and not details.reason
    if not refused or "larger than max" not in details.message:
        return ""
    return (" (the request is larger than the server accepts in one message, its "
            "SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES; do not retry it as is: send fewer or smaller files)")


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"sensorium: error: {message}", file=sys.stderr)
    return code


def _validation_lines(exc: pydantic.ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        where = "__".join(str(part) for part in error["loc"]).upper()
        prefix = f"SENSORIUM_{where}: " if where else ""
        lines.append(prefix + error["msg"].removeprefix("Value error, "))
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorium",
        description="Sensorium: gRPC services that make files searchable (PDF text, Whisper "
        "transcripts, CLIP vectors). Run `sensorium COMMAND --help` for each command.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    variables = "\n".join(f"  {name}\n      {doc}" for name, doc in known_variables().items())
    serve = commands.add_parser(
        "serve", help="run the gRPC server (configured by SENSORIUM_* variables)",
        description="Run the gRPC server until SIGTERM or Ctrl-C. All configuration comes from "
        "environment variables; unknown SENSORIUM_* variables stop start-up.",
        epilog=f"environment variables:\n{variables}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.set_defaults(run=_serve)

    health = commands.add_parser(
        "health", help="check a server's health (exit 0 = SERVING; for container health checks)",
        description="Ask a server's grpc.health.v1 service. Exit status: 0 SERVING, "
        "1 NOT_SERVING or unknown service, 2 unreachable.",
    )
    health.add_argument("--server", default=None,
                        help="HOST:PORT (default: 127.0.0.1 and SENSORIUM_HEALTH_PORT or 50052)")
    health.add_argument("--service", action="append", default=[],
                        help='service name, e.g. "sensorium.pdf.v1.PdfService" or "liveness"; '
                        'repeatable; exit 0 only when all are SERVING (default: the overall status)')
    health.add_argument("--json", action="store_true",
                        help='print one JSON object: {"server": "H:P", "services": {NAME: STATUS}} '
                        '("overall" names the overall status; SERVICE_UNKNOWN for a name the '
                        'server does not know), or {"server": "H:P", "error": "..."} when unreachable')
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    _tls_flags(health)
    health.set_defaults(run=_health)

    pdf = commands.add_parser("pdf", help="extract text (and images) from a PDF",
                              description="Print a PDF's text, page by page (pages separated by "
                              "form feeds), or the full result with --json.")
    pdf.add_argument("file", type=Path, help="the PDF file")
    pdf.add_argument("--pages", default="", help='page range, 1-based: "3", "3-7", "3-" (default all)')
    secret = pdf.add_mutually_exclusive_group()
    secret.add_argument("--password", default="", help="password of an encrypted PDF")
    secret.add_argument("--password-file", type=Path,
                        help="file whose first line is the password (keeps it out of `ps`)")
    pdf.add_argument("--blocks", action="store_true", help="include text blocks with positions")
    pdf.add_argument("--images", type=Path, metavar="DIR",
                     help="write embedded images into DIR (uses the streaming call)")
    pdf.add_argument("--no-ocr", action="store_true", help="never OCR pages without text")
    _client_flags(pdf)
    pdf.set_defaults(run=_pdf)

    transcribe = commands.add_parser("transcribe", help="transcribe speech in an audio file",
                                     description="Print timed segments of the transcript.")
    transcribe.add_argument("file", type=Path, help="audio file (wav, mp3, flac, ogg, opus, m4a)")
    transcribe.add_argument("--language", default="", help="ISO 639-1 code; default: detect")
    transcribe.add_argument("--translate", action="store_true", help="translate to English")
    transcribe.add_argument("--word-timestamps", action="store_true", help="include words")
    transcribe.add_argument("--vad", action="store_true", help="skip non-speech (Silero VAD)")
    transcribe.add_argument("--beam-size", type=int, default=0, help="beam size (default 5)")
    _client_flags(transcribe)
    transcribe.set_defaults(run=_transcribe)

    embed = commands.add_parser("embed", help="embed texts and images into the CLIP space",
                                description="Print one vector per input (JSON with --json). "
                                "Images of up to 4 MiB in all go in one EmbedImages call; more "
                                "go through StreamEmbed, one image per message (their JSON results "
                                "then carry no width and height).")
    embed.add_argument("--text", action="append", default=[], help="a text (repeatable)")
    embed.add_argument("--image", action="append", default=[], type=Path,
                       help="an image file (repeatable)")
    _client_flags(embed)
    embed.set_defaults(run=_embed)

    score = commands.add_parser("score", help="score images against texts (zero-shot)",
                                description="Print, for each image, every text's probability.")
    score.add_argument("--image", action="append", default=[], type=Path, required=True,
                       help="an image file (repeatable)")
    score.add_argument("--text", action="append", default=[], required=True,
                       help='a label or query, e.g. "a photo of a dog" (repeatable)')
    _client_flags(score)
    score.set_defaults(run=_score)

    index = commands.add_parser(
        "index", help="index files (PDF, audio, images) into a searchable index folder",
        description="Walk PATHs (files and folders) and the --manifest list, recognise each "
        "file's type by its content, and write its rows (PDF text chunks and images, transcript "
        "windows, image files; all embedded with the same CLIP model) into the index folder --out. "
        "Rerunnable: unchanged files are skipped without reading them, changed ones reindexed, "
        "deleted ones retired; a killed job loses at most the files in flight. Models and limits "
        "come from the same SENSORIUM_* variables as the server (README). See docs/index.md.",
        epilog="exit status: 0 the job ran (files that could not be indexed are rows of the files "
        "table, with their reason); 2 bad usage; 3 bad configuration (settings, a model that does "
        "not load, an index of another model or options); 4 the output cannot be used (not "
        "writable, another job writes this shard, not an index); 5 worth retrying (the --server "
        "is unreachable); 130 interrupted.",
    )
    index.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files and folders to index")
    index.add_argument("--out", type=Path, required=True, metavar="DIR", help="the index folder")
    index.add_argument("--manifest", type=Path, metavar="FILE",
                       help="a file listing more paths, one per line (# starts a comment)")
    index.add_argument("--shard", metavar="I/N",
                       help="index only shard I of N (I from 0, by a hash of each path); default: "
                       "JOB_COMPLETION_INDEX of SENSORIUM_INDEX__SHARD_COUNT in a Kubernetes "
                       "Indexed Job, else the one shard")
    index.add_argument("--server", metavar="HOST:PORT",
                       help="call a running deployment instead of running the models here")
    index.add_argument("--json", action="store_true",
                       help="print the summary as one JSON object (files by status and kind, rows "
                       "by kind, errors by reason, seconds, rates)")
    index.add_argument("--timeout", type=float, default=None,
                       help="deadline in seconds of each call to --server")
    _tls_flags(index)
    index.add_argument("--token-file", type=Path, metavar="FILE",
                       help="file whose first line is the bearer token --server expects")
    index.set_defaults(run=_index)

    search = commands.add_parser(
        "search", help="search an index folder by text or by image",
        description="Print the best rows of the index for QUERY (or --image), best first, with "
        "where they come from (path, page or time range), a snippet and the score. The query is "
        "embedded with the index's model, in this process or by --server.",
    )
    search.add_argument("query", nargs="?", default="", metavar="QUERY", help="what to look for")
    search.add_argument("--index", type=Path, required=True, metavar="DIR", help="the index folder")
    search.add_argument("-k", type=int, default=10, help="how many hits (default 10)")
    search.add_argument("--mode", choices=("hybrid", "vector", "text"), default=None,
                        help="hybrid: meaning and words, fused by rank (default for a text query); "
                        "vector: meaning only (CLIP; default and only mode for --image); text: "
                        "words only (BM25; needs no model)")
    search.add_argument("--kind", action="append", choices=("pdf_text", "pdf_image", "audio", "image"),
                        help="keep only hits of this kind (repeatable)")
    search.add_argument("--image", type=Path, metavar="FILE", help="find rows like this image")
    search.add_argument("--json", action="store_true",
                        help="print JSON Lines: one object per hit, the index's column names "
                        "(without the vector) plus score")
    _client_flags_without_json(search)
    search.set_defaults(run=_search)

    models = commands.add_parser(
        "models", help="prepare model directories (run where a model hub is reachable)",
        description="Download or assemble the models the settings name into SENSORIUM_MODEL_DIR "
        "so that servers start without network access.",
    )
    models.add_argument("--dir", type=Path, default=None,
                        help="model directory (default: SENSORIUM_MODEL_DIR)")
    models.add_argument("services", nargs="*", default=[], metavar="SERVICE",
                        help=f"services whose models to prepare: {', '.join(SERVICES)} (default: "
                        "those in SENSORIUM_SERVICES)")
    models.set_defaults(run=_models)
    return parser


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the full response in protobuf's JSON mapping")
    _client_flags_without_json(parser)


def _client_flags_without_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="HOST:PORT",
                        help="a running server; default: run the service in this process")
    parser.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    _tls_flags(parser)
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="file whose first line is the bearer token the server expects "
                        "(SENSORIUM_AUTH__TOKENS_FILE on the server); with --server")


def _tls_flags(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group(
        "TLS (with --server)", "any of these connects with TLS; mutual TLS needs --tls-cert and --tls-key"
    )
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS, trusting the system's certificate authorities")
    tls.add_argument("--tls-ca", type=Path, metavar="FILE",
                     help="PEM CA certificate to trust instead of the system's")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM client certificate")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM key of --tls-cert")
    tls.add_argument("--insecure", action="store_true",
                     help="allow --token-file over plaintext (the link is protected otherwise)")


def _security(args: argparse.Namespace) -> dict[str, Any]:
    """`Client` keyword arguments from the TLS and token flags."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together", EXIT_USAGE)
    token = None
    if getattr(args, "token_file", None) is not None:
        lines = args.token_file.read_text(encoding="utf-8").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise CliError(f"{args.token_file}: the first line must be the token", EXIT_USAGE)
    return {"tls": args.tls, "tls_ca": args.tls_ca, "tls_cert": args.tls_cert,
            "tls_key": args.tls_key, "token": token, "insecure": args.insecure}


@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace, service: ServiceName) -> AsyncIterator[Any]:
    """A `Client` of `--server`, or a `LocalClient` running `service` in this process."""
    security = _security(args)
    if args.server:
        async with Client(args.server, timeout=args.timeout, **security) as client:
            yield client
        return
    if any(security.values()):
        raise CliError("--tls* and --token-file apply to a remote server: add --server HOST:PORT",
                       EXIT_USAGE)
    from sensorium.local import LocalClient
    from sensorium.runtimes import Runtimes

    settings = Settings()
    # Engine logs would interleave with the output; failures surface as errors.
    logs.configure("CRITICAL", settings.log_format)
    async with Runtimes(settings, [service]) as runtimes:
        yield LocalClient(runtimes, timeout=args.timeout)


def _print_json(message: Message) -> None:
    print(json_format.MessageToJson(message, indent=2))


async def _serve(args: argparse.Namespace) -> int:
    from sensorium.server import serve

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return await serve(settings)


async def _health(args: argparse.Namespace) -> int:
    target = args.server or f"127.0.0.1:{os.environ.get('SENSORIUM_HEALTH_PORT', '50052')}"
    statuses: dict[str, str] = {}  # "" is the overall status, as in grpc.health.v1
    try:
        async with Client(target, timeout=args.timeout, **_security(args)) as client:
            for service in args.service or [""]:
                try:
                    statuses[service] = await client.health(service)
                except ClientError as exc:
                    if exc.details.code.name != "NOT_FOUND":
                        raise
                    statuses[service] = "SERVICE_UNKNOWN"
    except ClientError as exc:
        if args.json:
            print(json.dumps({"server": target, "error": f"unreachable ({exc.details})"}))
        else:
            print(f"{target}: unreachable ({exc.details})", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        named = {service or "overall": status for service, status in statuses.items()}
        print(json.dumps({"server": target, "services": named}, indent=2))
    else:
        for service, status in statuses.items():
            shown = f"unknown service on {target}" if status == "SERVICE_UNKNOWN" else status
            print(f"{service or 'overall'}: {shown}")
    return EXIT_OK if all(status == "SERVING" for status in statuses.values()) else EXIT_FAILED


def parse_pages(text: str) -> tuple[int, int]:
    """ "3" -> (3, 3); "3-7" -> (3, 7); "3-" -> (3, 0); "" -> (0, 0). """
    if not text:
        return 0, 0
    first, dash, last = text.partition("-")
    try:
        start = int(first) if first else 1
        end = (int(last) if last else 0) if dash else start
    except ValueError:
        raise CliError(f'--pages takes "N", "N-M" or "N-", not "{text}"', EXIT_USAGE) from None
    if start < 1 or (end and end < start):
        raise CliError(f'--pages "{text}" is not a range of 1-based pages', EXIT_USAGE)
    return start, end


async def _pdf(args: argparse.Namespace) -> int:
    first, last = parse_pages(args.pages)
    password = args.password
    if args.password_file:
        password = args.password_file.read_text(encoding="utf-8").splitlines()[0:1]
        password = password[0] if password else ""
    options = pdf_pb.ExtractOptions(
        first_page=first, last_page=last, password=password, include_blocks=args.blocks,
        include_images=args.images is not None,
        ocr_mode=pdf_pb.OCR_MODE_NEVER if args.no_ocr else pdf_pb.OCR_MODE_AUTO,
        max_pages_per_message=STREAM_PAGES_PER_MESSAGE,
    )
    size = args.file.stat().st_size
    async with connect(args, "pdf") as client:
        # In-process, the file is extracted in place: the stream's path, with nothing to upload.
        if args.server and size <= INLINE_LIMIT and args.images is None:
            response = await client.extract_document(args.file.read_bytes(), options)
            if args.json:
                _print_json(response)
            else:
                for page in response.pages:
                    _print_page(page)
            return EXIT_OK
        if args.images is not None:
            args.images.mkdir(parents=True, exist_ok=True)
        assembled = pdf_pb.ExtractDocumentResponse()
        async for message in client.stream_extract_document(args.file, options):
            kind = message.WhichOneof("result")
            if kind == "metadata":
                assembled.metadata.CopyFrom(message.metadata)
            elif kind in ("page", "pages"):
                pages = [message.page] if kind == "page" else message.pages.pages
                if args.json:
                    assembled.pages.extend(pages)
                else:
                    for page in pages:
                        _print_page(page)
            elif kind == "image" and args.images is not None and message.image.data:
                image = message.image
                name = f"page{image.page_number:04d}-{image.index:02d}.{image.format or 'bin'}"
                (args.images / name).write_bytes(image.data)
            elif kind == "summary":
                assembled.summary.CopyFrom(message.summary)
        if args.json:
            _print_json(assembled)
        return EXIT_OK


def _print_page(page: pdf_pb.Page) -> None:
    if page.HasField("error"):
        print(f"sensorium: page {page.page_number}: {page.error.message}", file=sys.stderr)
    elif page.ocr_message:
        print(f"sensorium: page {page.page_number}: {page.ocr_message}", file=sys.stderr)
    sys.stdout.write(page.text.rstrip("\n") + "\n\f")


async def _transcribe(args: argparse.Namespace) -> int:
    options = transcription_pb.TranscriptionOptions(
        language=args.language, word_timestamps=args.word_timestamps, beam_size=args.beam_size,
        task=transcription_pb.TASK_TRANSLATE if args.translate else transcription_pb.TASK_TRANSCRIBE,
    )
    if args.vad:
        options.vad_filter = True
    async with connect(args, "transcription") as client:
        assembled = transcription_pb.TranscribeResponse()
        async for message in client.stream_transcribe(args.file, options):
            kind = message.WhichOneof("result")
            if kind == "info":
                assembled.info.CopyFrom(message.info)
            elif kind == "segment":
                assembled.segments.append(message.segment)
                if not args.json:
                    time = message.segment.time
                    print(f"[{_clock(time.start_seconds)} -> {_clock(time.end_seconds)}] "
                          f"{message.segment.text}", flush=True)
            elif kind == "summary":
                assembled.summary.CopyFrom(message.summary)
        if args.json:
            _print_json(assembled)
    return EXIT_OK


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


async def _embed(args: argparse.Namespace) -> int:
    if not args.text and not args.image:
        raise CliError("give at least one --text or --image", EXIT_USAGE)
    inline = sum(path.stat().st_size for path in args.image) <= INLINE_LIMIT
    async with connect(args, "embedding") as client:
        results: list[tuple[str, Any]] = []
        if args.text:
            texts = await client.embed_texts(args.text)
            results += zip(args.text, texts.results, strict=True)
        if args.image and inline:
            embedded = await client.embed_images([path.read_bytes() for path in args.image])
            results += zip(map(str, args.image), embedded.results, strict=True)
        elif args.image:
            results += await _stream_images(client, args.image)
    failed = any(result.HasField("error") for _, result in results)
    if args.json:
        print(json.dumps([{"input": name, **json_format.MessageToDict(result)}
                          for name, result in results], indent=2))
        return EXIT_FAILED if failed else EXIT_OK
    for name, result in results:
        if result.HasField("error"):
            print(f"{name}: error: {result.error.message}")
        else:
            values = ", ".join(f"{v:+.4f}" for v in result.vector.values[:4])
            space = result.vector.space
            print(f"{name}: [{values}, ...] ({space.dimension}-d, {space.model}/{space.pretrained})")
    return EXIT_FAILED if failed else EXIT_OK


async def _stream_images(client: Client, paths: list[Path]) -> list[tuple[str, Any]]:
    """Embed `paths` through StreamEmbed (each file read only when its message is sent), as
    `ImageEmbedding` results in the order given."""
    requests = (embedding_pb.StreamEmbedRequest(id=str(i), image=path.read_bytes())
                for i, path in enumerate(paths))
    answers = {answer.id: answer async for answer in client.stream_embed(requests)}
    results = []
    for i, path in enumerate(paths):
        answer = answers[str(i)]
        result = embedding_pb.ImageEmbedding(error=answer.error) if answer.HasField("error") \
            else embedding_pb.ImageEmbedding(vector=answer.vector)
        results.append((str(path), result))
    return results


async def _score(args: argparse.Namespace) -> int:
    images = [path.read_bytes() for path in args.image]
    async with connect(args, "embedding") as client:
        response = await client.score(images, args.text)
    if args.json:
        _print_json(response)
        return EXIT_OK
    for path, row in zip(args.image, response.rows, strict=True):
        if row.HasField("error"):
            print(f"{path}: error: {row.error.message}")
            continue
        ranked = sorted(zip(args.text, row.probabilities, strict=True), key=lambda p: -p[1])
        print(f"{path}: " + ", ".join(f"{text!r} {p:.3f}" for text, p in ranked))
    return EXIT_OK


async def _index(args: argparse.Namespace) -> int:
    from sensorium.index.job import JobError, JobRequest, resolve_shard, run_job

    if not args.paths and args.manifest is None:
        raise CliError("name the files or folders to index (PATH...), or --manifest FILE", EXIT_USAGE)
    security = _security(args)
    if not args.server and any(security.values()):
        raise CliError("--tls* and --token-file apply to a remote server: add --server HOST:PORT",
                       EXIT_USAGE)
    settings = Settings()
    bar = sys.stderr.isatty()
    # With a bar, the log shows only problems; without (a pod's log), progress lines too.
    logs.configure("WARNING" if bar else settings.log_level, settings.log_format)
    try:
        request = JobRequest(
            inputs=list(args.paths), out=args.out, shard=resolve_shard(args.shard, settings),
            manifest=args.manifest, server=args.server,
            client_options={"timeout": args.timeout, **security}, progress_bar=bar,
        )
        summary = await run_job(request, settings)
    except JobError as exc:
        raise CliError(str(exc), exc.code) from None
    if args.json:
        print(json.dumps(summary))
    else:
        _print_index_summary(summary)
    return EXIT_OK


def _print_index_summary(summary: dict[str, Any]) -> None:
    files, rows = summary["files"], summary["rows"]
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(files["by_status"].items())) or "none"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(files["by_kind"].items())) or "none"
    row_kinds = ", ".join(f"{n} {k}" for k, n in sorted(rows["by_kind"].items())) or "none"
    print(f"index {summary['index']} (shard {summary['shard']}): {files['listed']} files listed, "
          f"{files['unchanged']} unchanged, {files['removed']} removed, {files['processed']} processed "
          f"in {summary['seconds']:.1f} s")
    print(f"  files: {statuses}; by kind: {kinds}")
    print(f"  rows: {rows['total']} ({row_kinds})")
    if summary["errors"]:
        errors = ", ".join(f"{n} {r}" for r, n in sorted(summary["errors"].items()))
        print(f"  errors: {errors} (the files table says which files and why: docs/index.md)")


async def _search(args: argparse.Namespace) -> int:
    from sensorium.index.layout import IndexStoreError
    from sensorium.index.search import SearchStore

    query: str = args.query.strip()
    if not query and args.image is None:
        raise CliError("give a QUERY, or --image FILE", EXIT_USAGE)
    if args.image is not None and query:
        raise CliError("search by QUERY or by --image, not both", EXIT_USAGE)
    default: Literal["hybrid", "vector", "text"] = "vector" if args.image is not None else "hybrid"
    mode: Literal["hybrid", "vector", "text"] = args.mode or default
    if args.image is not None and mode != "vector":
        raise CliError("--image searches by meaning only: use --mode vector (the default)", EXIT_USAGE)
    if args.k < 1:
        raise CliError("-k must be at least 1", EXIT_USAGE)
    settings = Settings()
    logs.configure("WARNING", settings.log_format)
    try:
        store = await asyncio.to_thread(SearchStore, args.index)
    except IndexStoreError as exc:
        raise CliError(str(exc), 3) from None
    vector = None
    if mode != "text":
        vector = await _query_vector(args, store.reader.manifest, query)
    hits = await asyncio.to_thread(store.search, query_text=query or None, query_vector=vector,
                                   mode=mode, k=args.k, kinds=args.kind)
    for hit in hits:
        if args.json:
            print(json.dumps(hit.to_json(), separators=(",", ":")))
            continue
        if hit.page is not None:
            where = f"page {hit.page}"
        elif hit.start_seconds is not None and hit.end_seconds is not None:
            where = f"{_clock(hit.start_seconds)}-{_clock(hit.end_seconds)}"
        else:
            where = ""
        print(f"{hit.score:.4f}  {hit.kind:<9} {hit.path}{'  ' + where if where else ''}")
        snippet = hit.snippet(query or None)
        if snippet:
            print(f"        {snippet}")
    if not hits and not args.json:
        print("no hits", file=sys.stderr)
    return EXIT_OK


async def _query_vector(args: argparse.Namespace, manifest: Any, query: str) -> Any:
    """The query embedded by the index's model: refused when the model here is another."""
    async with connect(args, "embedding") as client:
        return await embed_query(client, manifest, text=query,
                                 image=args.image.read_bytes() if args.image is not None else None)


async def embed_query(client: Any, manifest: Any, *, text: str = "", image: bytes | None = None) -> Any:
    """`text` (or `image`) embedded by `client`'s model as a float32 vector, once the model is
    checked to be the one the index (`manifest`) was built with. `sensorium search` calls it;
    bench/search.py times it with one client kept open."""
    import numpy as np

    space = (await client.embedding_space()).space
    if (space.model, space.pretrained, space.weights_sha256) != (
        manifest.space.model, manifest.space.pretrained, manifest.space.weights_sha256
    ):
        raise CliError(
            f"the index was built with {manifest.space.model} ({manifest.space.pretrained or 'random'}, "
            f"weights {manifest.space.weights_sha256[:12]}) but the model here is {space.model} "
            f"({space.pretrained or 'random'}, weights {space.weights_sha256[:12]}): set "
            "SENSORIUM_EMBEDDING__MODEL and __PRETRAINED as when the index was built", 3)
    if image is not None:
        response = await client.embed_images([image])
    else:
        response = await client.embed_texts([text])
    result = response.results[0]
    if result.HasField("error"):
        raise CliError(f"the query cannot be embedded: {result.error.message}")
    return np.asarray(result.vector.values, dtype=np.float32)


async def _models(args: argparse.Namespace) -> int:
    from sensorium.models import prepare_models

    settings = Settings()
    logs.configure("INFO", settings.log_format)
    model_dir = args.dir or settings.model_dir
    services: list[str] = args.services or list(settings.services)
    unknown = set(services) - set(SERVICES)
    if unknown:
        raise CliError(f"unknown service(s) {', '.join(sorted(unknown))}; known: "
                       f"{', '.join(SERVICES)}", EXIT_USAGE)
    names: list[ServiceName] = [name for name in SERVICES if name in services]
    return await asyncio.to_thread(prepare_models, settings, model_dir, names)


if __name__ == "__main__":
    sys.exit(main())
