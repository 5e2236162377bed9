"""What a streamed message costs: PDF pages sent one per message or several per message.

A grpc.aio server in this process streams the same pages (`Page` messages of ~2 kB of text,
like a page of a text document) to a grpc.aio client in this process, as `page` messages one
page each or as `pages` batches (`StreamExtractDocumentResponse`, the PDF service's real
messages, without the service around them). Printed: CPU time of the process (server and
client together) per page, and wall time per page. This is the floor under
`max_pages_per_message` in bench/pdf.py: what batching can save at most.

Example:
  .venv/bin/python bench/stream_messages.py                 # 20,000 pages at 1, 8 and 32 per message
  .venv/bin/python bench/stream_messages.py --pages 5000 --per-message 1 4 16 64
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import harness  # bench/ is on sys.path when this file is run as a script

from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pb_grpc

TEXT = "Sensorium benchmarks extract text page by page from long documents. " * 30


class _Streamer(pb_grpc.PdfServiceServicer):
    def __init__(self, pages: int, per_message: int) -> None:
        self.pages, self.per_message = pages, per_message

    async def StreamExtractDocument(
        self, requests: AsyncIterator[pb.StreamExtractDocumentRequest], context: Any
    ) -> AsyncIterator[pb.StreamExtractDocumentResponse]:
        async for _ in requests:
            pass
        for first in range(0, self.pages, self.per_message):
            numbers = range(first + 1, min(self.pages, first + self.per_message) + 1)
            pages = [pb.Page(page_number=n, text=TEXT, has_text_layer=True, width=595, height=842)
                     for n in numbers]
            if self.per_message == 1:
                yield pb.StreamExtractDocumentResponse(page=pages[0])
            else:
                yield pb.StreamExtractDocumentResponse(pages=pb.PageBatch(pages=pages))


def _request() -> Iterator[pb.StreamExtractDocumentRequest]:
    yield pb.StreamExtractDocumentRequest(chunk=b"%PDF-")


async def measure(pages: int, per_message: int, repeats: int) -> tuple[float, float]:
    """Best CPU µs and wall µs per page over `repeats` streams."""
    server = grpc.aio.server()
    pb_grpc.add_PdfServiceServicer_to_server(_Streamer(pages, per_message), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    best_cpu = best_wall = float("inf")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.PdfServiceStub(channel)
            for _ in range(repeats + 1):  # the first stream warms up the channel
                cpu, wall = time.process_time(), time.perf_counter()
                received = 0
                async for message in stub.StreamExtractDocument(_request()):
                    received += 1 if message.HasField("page") else len(message.pages.pages)
                assert received == pages, received
                best_cpu = min(best_cpu, (time.process_time() - cpu) / pages * 1e6)
                best_wall = min(best_wall, (time.perf_counter() - wall) / pages * 1e6)
    finally:
        await server.stop(0)
    return best_cpu, best_wall


async def main(args: argparse.Namespace) -> int:
    print(harness.machine_markdown())
    print(f"\nCommand: `{' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}`\n")
    print("| pages per message | CPU µs per page (server + client) | wall µs per page |")
    print("|--:|--:|--:|")
    for per_message in args.per_message:
        cpu, wall = await measure(args.pages, per_message, args.repeats)
        print(f"| {per_message} | {cpu:.1f} | {wall:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20_000, help="pages per stream")
    parser.add_argument("--per-message", type=int, nargs="+", default=[1, 8, 32],
                        help="pages per message, one row each")
    parser.add_argument("--repeats", type=int, default=3, help="streams per row (best is kept)")
    sys.exit(asyncio.run(main(parser.parse_args())))
