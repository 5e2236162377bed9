"""PDF service vs PyMuPDF, same bytes, same run.

(a) pages/s through the service (streaming call, 1 client) ÷ a plain in-process PyMuPDF loop
    (open, get_text on every page) — target >= 0.9; with 1 worker (the cost of isolation:
    processes, pickling, chunks, gRPC) and with the default workers (one per CPU: the service
    spreads one document's chunks over them);
(b) the service's speed-up from 1 to 2 workers under 4 clients ÷ PyMuPDF's own speed-up from
    1 to 2 processes under the same 4-way load — target >= 0.9.

The server runs in this process (its workers are processes of their own); the document is the
117-page GeoTopo lecture notes from the real-world corpus (CORPUS_DIR, tests/support/corpus.py)
when it is there, else a generated 150-page document.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import pymupdf

from sensorium.client import Client
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pdf_grpc
from sensorium.server import Server
from sensorium.settings import PdfSettings, Settings

REPO = Path(__file__).resolve().parent.parent
CORPUS_DOC = "pdf/sf_009_GeoTopo-komprimiert.pdf"


def extract_with_pymupdf(path: str) -> list[str]:
    """What a user would write without Sensorium: open the file, get every page's text (and
    hand it to the caller, as the service hands it to its client)."""
    with pymupdf.open(path) as doc:
        return [page.get_text() for page in doc]


def document(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests" / "support"))  # the corpus helper the tests use
    import corpus

    found = corpus.corpus_file(CORPUS_DOC)
    if found is not None:
        return found
    path = tmp / "generated.pdf"
    doc = pymupdf.open()
    filler = "Sensorium benchmarks extract text page by page from long documents. " * 40
    for i in range(150):
        doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 560, 800), f"{i} {filler}", fontsize=8)
    doc.save(path)
    return path


def upload(path: Path, pages_per_message: int) -> list[pb.StreamExtractDocumentRequest]:
    """The messages of one streaming upload of `path`: a header, then 1 MiB chunks."""
    data = path.read_bytes()
    header = pb.StreamExtractDocumentHeader(
        upload={"filename": path.name, "size_bytes": len(data)},
        options={"max_pages_per_message": pages_per_message},
    )
    chunks = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    return [pb.StreamExtractDocumentRequest(header=header),
            *(pb.StreamExtractDocumentRequest(chunk=chunk) for chunk in chunks)]


async def service_run(path: Path, workers: int, concurrency: int, args: argparse.Namespace,
                      pages: int) -> harness.RunResult:
    settings = Settings(address="127.0.0.1:0", health_port=0, metrics_port=-1, services=["pdf"],
                        shutdown_delay_seconds=0, pdf={"workers": workers, "ocr": False,
                                             "recycle_after_documents": args.recycle})
    server = Server(settings)
    await server.start()
    try:
        messages = upload(path, args.pages_per_message)
        async with Client(f"127.0.0.1:{server.port}") as client:
            async def call(i: int) -> None:
                # The load generator calls the grpc.aio stub directly: it is the cheapest Python
                # client (the shipped Client uploads on the synchronous stack for correct error
                # statuses, at ~2x the client CPU per page), and on 2 cores every bit of client
                # CPU is taken from the workers being measured.
                got = 0
                stub = pdf_grpc.PdfServiceStub(client.channel)
                async for message in stub.StreamExtractDocument(iter(messages)):
                    kind = message.WhichOneof("result")
                    got += 1 if kind == "page" else len(message.pages.pages) if kind == "pages" else 0
                assert got == pages, got

            return await harness.run_closed_loop(
                call, concurrency=concurrency, duration=args.duration, warmup=args.warmup,
                name=f"service, {workers or 'default'} worker(s)", items_per_call=pages,
                progress=not args.quiet,
            )
    finally:
        await server.shutdown()


async def pool_run(path: Path, processes: int, concurrency: int, args: argparse.Namespace,
                   pages: int) -> harness.RunResult:
    with multiprocessing.get_context("forkserver").Pool(processes) as pool:
        pool.map(extract_with_pymupdf, [str(path)] * processes)  # start and warm the processes
        return await harness.measure_sync(
            lambda i: pool.apply(extract_with_pymupdf, (str(path),)),
            concurrency=concurrency, duration=args.duration, warmup=args.warmup,
            name=f"PyMuPDF, {processes} process(es)", items_per_call=pages,
            progress=not args.quiet,
        )


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = document(Path(tmp))
        # Read while it exists: a generated document goes with the temporary directory.
        size = path.stat().st_size
        pages = len(extract_with_pymupdf(str(path)))
        harness.log(f"document {path.name}: {pages} pages, {size} bytes")
        inline = await harness.measure_sync(
            lambda i: extract_with_pymupdf(str(path)), concurrency=1, duration=args.duration,
            warmup=args.warmup, name="PyMuPDF in-process loop", items_per_call=pages,
            inline=True, progress=not args.quiet,
        )
        one = await service_run(path, 1, 1, args, pages)
        default = await service_run(path, 0, 1, args, pages)
        svc1 = await service_run(path, 1, 4, args, pages)
        svc2 = await service_run(path, 2, 4, args, pages)
        lib1 = await pool_run(path, 1, 4, args, pages)
        lib2 = await pool_run(path, 2, 4, args, pages)
    results = [inline, one, default, svc1, svc2, lib1, lib2]
    a = harness.ratio(one, inline)
    a_default = harness.ratio(default, inline)
    b = (svc2.items_per_s / svc1.items_per_s) / (lib2.items_per_s / lib1.items_per_s)
    print(harness.machine_markdown())
    print(f"\nCommand: `{' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}`\n")
    print(f"Document: `{path.name}`, {pages} pages, {size} bytes; "
          f"max_pages_per_message={args.pages_per_message}\n")
    print(harness.markdown_header())
    for result in results:
        print(result.markdown_row())
    print(f"\n(a) service pages/s, 1 client ÷ in-process PyMuPDF loop: **{a:.2f}** with 1 worker, "
          f"**{a_default:.2f}** with the default workers (target >= 0.9)")
    print(f"(b) service speed-up 1 -> 2 workers ({svc2.items_per_s / svc1.items_per_s:.2f}x) ÷ "
          f"PyMuPDF speed-up 1 -> 2 processes ({lib2.items_per_s / lib1.items_per_s:.2f}x), "
          f"4 clients: **{b:.2f}** (target >= 0.9)")
    if args.json:
        extra: dict[str, Any] = {"ratio_a": a, "ratio_a_default_workers": a_default,
                                 "ratio_b": b, "pages": pages,
                                 "max_pages_per_message": args.pages_per_message}
        harness.write_json(args.json, results, command=" ".join(sys.argv), extra=extra)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_args(parser, concurrency=(1,), duration=10.0, warmup=2.0)
    parser.add_argument("--pages-per-message", type=int, default=32,
                        help="the request's max_pages_per_message (0: one message per page)")
    parser.add_argument("--recycle", type=int, default=PdfSettings().recycle_after_documents,
                        help="SENSORIUM_PDF__RECYCLE_AFTER_DOCUMENTS for the service (tasks)")
    sys.exit(asyncio.run(main(parser.parse_args())))
