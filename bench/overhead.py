"""The embedding service's per-request path alone: how close to the gRPC floor, and to the bare work.

`sensorium serve` runs as its own process with a near-free model: a one-layer open_clip config
(77-token context, 224 px input) with random weights, loaded through the normal settings
(`SENSORIUM_EMBEDDING__MODEL=local-dir:...`), so tokenizing, decoding and preprocessing,
batching, normalising and serialising all run while the model costs almost nothing. Beside it,
in the same run and driven by the same client processes:

- the **floor**: a do-nothing raw-bytes grpc.aio handler in its own server process
  (`bench/grpc_floor.py --serve`), sent the same serialized request bytes;
- the **bare work**: the service's own per-item work (tokenize a text; decode, resize and
  normalise a 640x480 JPEG) in a plain process pool of one process per core.

Clients are separate processes with one channel each, each sending one item per call and its
next call when the last returns; every text is different. 1, 16 and 64 clients by default.
Each repeat measures every row once, floor and service back to back, so ratios compare
numbers taken minutes apart at most; the table gives every repeat and the ratios' medians.

`--security default` runs the server with its default settings (no TLS, no tokens);
`tls-token` with TLS on the API port and a bearer token (the floor then speaks TLS too).

Examples:
  .venv/bin/python bench/overhead.py                               # ~6 min
  .venv/bin/python bench/overhead.py --kinds texts -c 1 16 -d 3 --repeats 2
  .venv/bin/python bench/overhead.py --model ViT-B-32 --device cuda --images-per-call 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc_floor  # bench/ is on sys.path when this file is run as a script
import harness

NEAR_FREE = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "head_width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}
"""One transformer layer per tower, CLIP's tokenizer and 224 px input: the model is almost free,
the path around it is not."""
SERVICE = "/sensorium.embedding.v1.EmbeddingService/"
TOKEN = "overhead-bench-token"
MOODS = ("sunny", "rainy", "old", "colourful", "quiet", "crowded", "dark", "bright")
THINGS = ("dog", "cat", "bicycle", "mountain", "beach", "city street", "kitchen", "forest")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def text_for(client: int, call: int) -> str:
    """A different caption for every call of every client."""
    return (f"a photo of a {MOODS[call % 8]} {THINGS[(call // 8) % 8]} taken by client {client}, "
            f"picture {call}")


def write_jpegs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """Distinct JPEGs shaped like photos: smooth gradients plus noise, quality 90."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        x = np.linspace(0, 1, width)[None, :, None]
        y = np.linspace(0, 1, height)[:, None, None]
        base = 255 * (0.5 + 0.5 * np.sin(6 * x * (1 + i % 5) + 4 * y + np.arange(3) * (i + 1)))
        pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
        paths.append(folder / f"{i:03d}.jpg")
        paths[-1].write_bytes(buffer.getvalue())
    return paths


def write_near_free_model(folder: Path) -> Path:
    """open_clip's local-dir format: the config above with random weights (seed 0)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**NEAR_FREE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": NEAR_FREE, "preprocess_cfg": {}}, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    return folder


@dataclass(frozen=True)
class Security:
    name: str
    cert: Path | None = None
    key: Path | None = None
    ca: bytes | None = None
    tokens: Path | None = None

    @property
    def token(self) -> str | None:
        return TOKEN if self.tokens is not None else None


def make_security(name: str, folder: Path) -> Security:
    if name == "default":
        return Security(name)
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now, day = datetime.datetime.now(datetime.UTC), datetime.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "overhead bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + day)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path, tokens = folder / "server.crt", folder / "server.key", folder / "tokens"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    tokens.write_text(f"{TOKEN} embedding\n")
    for private in (key_path, tokens):
        private.chmod(0o600)  # the server refuses a key or tokens file other users may read
    return Security(name, cert_path, key_path, ca.public_bytes(serialization.Encoding.PEM), tokens)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """`sensorium serve` with the embedding service, its log in a file."""

    def __init__(self, args: argparse.Namespace, model: str, security: Security, log_path: Path,
                 address: str | None = None) -> None:
        # Several processes may listen on one address: grpc sets SO_REUSEPORT, and the kernel
        # spreads new connections over them (--front-ends).
        self.address = address or f"127.0.0.1:{_free_port()}"
        health_port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
        env.update({
            "SENSORIUM_ADDRESS": self.address, "SENSORIUM_HEALTH_PORT": str(health_port),
            "SENSORIUM_METRICS_PORT": str(_free_port()), "SENSORIUM_SERVICES": "embedding",
            "SENSORIUM_DEVICE": args.device, "SENSORIUM_SHUTDOWN_DELAY_SECONDS": "0",
            "SENSORIUM_EMBEDDING__MODEL": model, "SENSORIUM_EMBEDDING__PRETRAINED": args.pretrained,
        })
        if security.cert is not None and security.key is not None and security.tokens is not None:
            env.update({"SENSORIUM_TLS__CERT_FILE": str(security.cert),
                        "SENSORIUM_TLS__KEY_FILE": str(security.key),
                        "SENSORIUM_AUTH__TOKENS_FILE": str(security.tokens)})
        for setting in args.setting:
            name, _, value = setting.partition("=")
            env[name if name.startswith("SENSORIUM_") else f"SENSORIUM_{name.upper()}"] = value
        self.log = log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "sensorium.cli", "serve"], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        self._wait_serving(f"127.0.0.1:{health_port}", log_path)

    def _wait_serving(self, probe: str, log_path: Path) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + 300
        with grpc.insecure_channel(probe) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                with contextlib.suppress(grpc.RpcError):
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"the server did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this benchmark dies, however it dies (Linux)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants so far (0 when psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


# --------------------------------------------------------------------------------------------
# Client processes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """What every client process of one measurement does."""

    target: str
    floor: bool
    kind: str
    """"texts" or "images"."""
    start_at: float
    """`time.monotonic()` (system-wide on Linux) when measuring starts; before it, warm-up."""
    stop_at: float
    root_cert: bytes | None
    token: str | None
    images: list[str] = field(default_factory=list)
    items_per_call: int = 1


def _request(pb: Any, phase: Phase, client: int, call: int, images: list[bytes]) -> Any:
    if phase.kind == "texts":
        return pb.EmbedTextsRequest(texts=[text_for(client, call * phase.items_per_call + k)
                                           for k in range(phase.items_per_call)])
    start = client * 7 + call * phase.items_per_call
    return pb.EmbedImagesRequest(
        images=[images[(start + k) % len(images)] for k in range(phase.items_per_call)])


async def _run_phase(phase: Phase, client: int) -> tuple[list[float], dict[str, int]]:
    from sensorium.embedding.v1 import embedding_service_pb2 as pb

    images = [Path(p).read_bytes() for p in phase.images]  # noqa: ASYNC240 - before any call
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    if phase.root_cert is not None:
        channel = grpc.aio.secure_channel(
            phase.target, grpc.ssl_channel_credentials(root_certificates=phase.root_cert), options=options)
    else:
        channel = grpc.aio.insecure_channel(phase.target, options=options)
    metadata = (("authorization", f"Bearer {phase.token}"),) if phase.token else None
    method = "EmbedTexts" if phase.kind == "texts" else "EmbedImages"
    response_type = pb.EmbedTextsResponse if phase.kind == "texts" else pb.EmbedImagesResponse
    if phase.floor:
        stub = channel.unary_unary(grpc_floor.SINK, _registered_method=True)  # type: ignore[call-arg]
    else:
        stub = channel.unary_unary(SERVICE + method, response_deserializer=response_type.FromString,
                                   _registered_method=True)  # type: ignore[call-arg]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    clock = time.monotonic
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        call = 0
        while (now := clock()) < phase.stop_at:
            # Serialized by the client in both cases: the floor gets the very same bytes.
            payload = _request(pb, phase, client, call, images).SerializeToString()
            call += 1
            try:
                response = await stub(payload, metadata=metadata, timeout=60)
                if not phase.floor:
                    bad = [r.error.reason for r in response.results if r.HasField("error")]
                    if bad or len(response.results) != phase.items_per_call:
                        raise ValueError(f"item errors {bad}")
            except (grpc.RpcError, ValueError) as exc:
                if now >= phase.start_at:
                    errors[harness.error_kind(exc)] += 1
                continue
            if now >= phase.start_at:
                latencies.append(clock() - now)
    finally:
        await channel.close()
    return latencies, dict(errors)


def _client_main(conn: multiprocessing.connection.Connection, client: int) -> None:
    while (phase := conn.recv()) is not None:
        try:
            conn.send(asyncio.run(_run_phase(phase, client)))
        except Exception as exc:
            conn.send(exc)


class Clients:
    """`count` client processes, started once, each running the phases it is sent."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[multiprocessing.connection.Connection] = []
        self.processes = []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=_client_main, args=(child, index), daemon=True)
            process.start()
            self.conns.append(parent)
            self.processes.append(process)

    def run(self, phase: Phase, clients: int) -> tuple[list[float], dict[str, int]]:
        for conn in self.conns[:clients]:
            conn.send(phase)
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        for conn in self.conns[:clients]:
            answer = conn.recv()
            if isinstance(answer, Exception):
                raise answer
            latencies += answer[0]
            errors.update(answer[1])
        return latencies, dict(errors)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self.processes:
            process.join(10)


# --------------------------------------------------------------------------------------------
# The bare work in a process pool
# --------------------------------------------------------------------------------------------

_ENGINE: Any = None
_IMAGES: list[bytes] = []


def _bare_init(model: str, pretrained: str, images: list[str]) -> None:
    global _ENGINE, _IMAGES
    import torch

    from sensorium.device import resolve_device
    from sensorium.embedding.embedder import Embedder

    torch.set_num_threads(1)
    _ENGINE = Embedder.load(model, pretrained, Path(tempfile.gettempdir()), resolve_device("cpu"))
    _IMAGES = [Path(p).read_bytes() for p in images]


def _bare_text(i: int) -> int:
    return int(_ENGINE.prepare_text(text_for(10_000, i)).token_count)


def _bare_image(i: int) -> int:
    return int(_ENGINE.prepare_image(_IMAGES[i % len(_IMAGES)], max_bytes=1 << 30, max_pixels=1 << 40).width)


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def bare_pool_rate(pool: Any, kind: str, duration: float, warmup: float) -> float:
    """Items/s of the per-item work over the pool's processes, in rounds of many items."""
    work = _bare_text if kind == "texts" else _bare_image
    chunk = 256 if kind == "texts" else 8
    per_round = chunk * 4 * _cores()
    start = next_index = 0
    t0 = time.monotonic()
    measured_from: float | None = None
    while True:
        now = time.monotonic()
        if measured_from is None and now - t0 >= warmup:
            measured_from, start = now, next_index
        if measured_from is not None and now - measured_from >= duration:
            return (next_index - start) / (now - measured_from)
        pool.map(work, range(next_index, next_index + per_round), chunksize=chunk)
        next_index += per_round


# --------------------------------------------------------------------------------------------
# Driving it
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    security: str
    repeat: int
    kind: str
    target: str
    """"floor", "service" or "bare pool"."""
    clients: int
    result: harness.RunResult | None = None
    items_per_s: float = 0.0
    server_cpu_pct: float | None = None
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


def measure(
    clients: Clients, phase: Phase, count: int, name: str, cpu_pids: list[int]
) -> tuple[harness.RunResult, float | None]:
    cpu0 = sum(tree_cpu_seconds(pid) for pid in cpu_pids)
    latencies, errors = clients.run(phase, count)
    cpu1 = sum(tree_cpu_seconds(pid) for pid in cpu_pids)
    wall = phase.stop_at - phase.start_at
    result = harness.summarize(name, count, latencies, errors, wall, items_per_call=phase.items_per_call)
    pct = round(100 * (cpu1 - cpu0) / wall, 1) if cpu_pids else None
    return result, pct


def run_security(args: argparse.Namespace, security: Security, model: str, images: list[Path],
                 clients: Clients, work: Path) -> list[Row]:
    rows: list[Row] = []
    services = [ServiceProcess(args, model, security, work / f"serve-{security.name}.log")]
    for index in range(1, args.front_ends):
        services.append(ServiceProcess(args, model, security, work / f"serve-{security.name}-{index}.log",
                                       services[0].address))
    tls = (security.cert, security.key) if security.cert and security.key else None
    floor = grpc_floor.SubprocessServer(tls)
    targets = {"floor": f"127.0.0.1:{floor.port}", "service": services[0].address}
    pids = {"floor": [floor.proc.pid], "service": [s.process.pid for s in services]}
    pool = None
    if args.bare_pool:
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(_cores(), initializer=_bare_init,
                            initargs=(model, args.pretrained, [str(p) for p in images]))
    try:
        for repeat in range(args.repeats):
            for kind in args.kinds:
                for count in args.concurrency:
                    for target in ("floor", "service"):
                        start_at = time.monotonic() + 1.0 + args.warmup
                        phase = Phase(targets[target], target == "floor", kind, start_at,
                                      start_at + args.duration, security.ca, security.token,
                                      [str(p) for p in images] if kind == "images" else [],
                                      args.images_per_call if kind == "images" else 1)
                        name = f"{kind}: {target}"
                        result, pct = measure(clients, phase, count, name, pids[target])
                        row = Row(security.name, repeat, kind, target, count, result, result.items_per_s,
                                  pct, os.getloadavg())
                        rows.append(row)
                        if not args.quiet:
                            harness.log(f"[{security.name} #{repeat}] {name} C={count}: "
                                        f"{result.summary_line()}, server CPU {pct}%")
                if pool is not None:
                    rate = bare_pool_rate(pool, kind, args.duration, args.warmup)
                    rows.append(Row(security.name, repeat, kind, "bare pool", _cores(),
                                    None, rate, None, os.getloadavg()))
                    if not args.quiet:
                        harness.log(f"[{security.name} #{repeat}] {kind}: bare pool {rate:,.0f} items/s")
    finally:
        if pool is not None:
            pool.terminate()
        floor.close()
        for service in services:
            service.close()
    return rows


def ratios(rows: list[Row], args: argparse.Namespace) -> dict[str, list[float]]:
    """Per repeat: service ÷ floor (req/s) per kind and C; images service ÷ bare pool (items/s);
    service p50 - floor p50 at the lowest C (ms)."""
    out: dict[str, list[float]] = {}
    keyed = {(r.security, r.repeat, r.kind, r.target, r.clients): r for r in rows}
    for r in rows:
        if r.target != "service" or r.result is None:
            continue
        key = (r.security, r.repeat, r.kind)
        floor = keyed.get((*key, "floor", r.clients))
        if floor is not None and floor.items_per_s > 0:
            out.setdefault(f"{r.security} {r.kind} C={r.clients}: service ÷ floor", []).append(
                r.items_per_s / floor.items_per_s)
            if r.clients == min(args.concurrency) and floor.result is not None:
                out.setdefault(f"{r.security} {r.kind} C={r.clients}: p50 service - floor (ms)", []).append(
                    (r.result.latency_p50_s - floor.result.latency_p50_s) * 1e3)
        # The texts' bare pool (tokenizing alone, ~tens of thousands a second) is shown but is
        # no target: a text's cost is the call around it, which the floor measures.
        pool = next((p for p in rows
                     if (p.security, p.repeat, p.kind, p.target) == (*key, "bare pool")), None)
        if r.kind != "images":
            pool = None
        if pool is not None and pool.items_per_s > 0:
            out.setdefault(f"{r.security} {r.kind} C={r.clients}: service ÷ bare pool", []).append(
                r.items_per_s / pool.items_per_s)
    return out


def report(rows: list[Row], found: dict[str, list[float]], args: argparse.Namespace, command: str) -> None:
    print(harness.machine_markdown())
    print(f"- Load average (1/5/15 min) at the start: {args.load_start}; at the end: "
          f"{tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"\nCommand: `{command}`\n")
    print(f"Model: {args.model_label}; device {args.device}; {args.images_per_call} image(s) per image "
          f"call; {args.front_ends} server process(es); settings {args.setting or 'defaults'}; "
          f"{args.duration:g} s measured after {args.warmup:g} s warm-up per row\n")
    print("| security | # | kind | target | clients | req/s | items/s | p50 ms | p95 ms | p99 ms | errors "
          "| server CPU % | load 1 min |")
    print("|---|--:|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|")
    for r in rows:
        res = r.result
        cells = [r.security, str(r.repeat), r.kind, r.target, str(r.clients),
                 f"{res.throughput_rps:,.0f}" if res else "", f"{r.items_per_s:,.0f}",
                 *( [f"{res.latency_p50_s * 1e3:.2f}", f"{res.latency_p95_s * 1e3:.2f}",
                     f"{res.latency_p99_s * 1e3:.2f}",
                     ", ".join(f"{k} {v}" for k, v in sorted(res.errors.items())) or "0"]
                    if res else ["", "", "", ""]),
                 "" if r.server_cpu_pct is None else f"{r.server_cpu_pct:.0f}", f"{r.load[0]:.2f}"]
        print("| " + " | ".join(cells) + " |")
    print("\n| ratio | median | every repeat |\n|---|--:|---|")
    for name, values in found.items():
        print(f"| {name} | **{statistics.median(values):.2f}** | {', '.join(f'{v:.2f}' for v in values)} |")


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sensorium-overhead-") as folder:
        yield Path(folder)


def main(args: argparse.Namespace) -> int:
    import signal

    # SIGTERM unwinds like Ctrl-C, so the servers and client processes are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args.load_start = tuple(round(x, 2) for x in os.getloadavg())
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    with _workdir() as work:
        if args.model == "near-free":
            model = f"local-dir:{write_near_free_model(work / 'near-free')}"
            args.model_label = "near-free (1 layer per tower, width 64, 77 tokens, 224 px, random weights)"
        else:
            model = args.model
            args.model_label = f"{args.model}/{args.pretrained or 'random weights'}"
        images = write_jpegs(work, 64, args.width, args.height) if "images" in args.kinds else []
        clients = Clients(max(args.concurrency))
        rows: list[Row] = []
        try:
            for name in args.security:
                rows += run_security(args, make_security(name, work), model, images, clients, work)
        finally:
            clients.close()
    found = ratios(rows, args)
    report(rows, found, args, command)
    if args.json:
        results = [r.result for r in rows if r.result is not None]
        harness.write_json(args.json, results, command=command, extra={
            "rows": [{"security": r.security, "repeat": r.repeat, "kind": r.kind, "target": r.target,
                      "clients": r.clients, "items_per_s": r.items_per_s, "server_cpu_pct": r.server_cpu_pct,
                      "load": r.load} for r in rows],
            "ratios": found, "load_start": args.load_start, "load_end": os.getloadavg(),
        })
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_args(parser, concurrency=(1, 16, 64), duration=5.0, warmup=1.0)
    parser.add_argument("--kinds", nargs="+", choices=["texts", "images"], default=["texts", "images"])
    parser.add_argument("--security", nargs="+", choices=["default", "tls-token"],
                        default=["default", "tls-token"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="measure every row this many times (default: 3)")
    parser.add_argument("--model", default="near-free",
                        help='"near-free" (default), or an open_clip model name such as ViT-B-32')
    parser.add_argument("--pretrained", default="", help='open_clip tag for --model; "" = random weights')
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--images-per-call", type=int, default=1, help="images in one EmbedImages call")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--no-bare-pool", dest="bare_pool", action="store_false",
                        help="skip the process pool doing the bare per-item work")
    parser.add_argument("--front-ends", type=int, default=1,
                        help="sensorium serve processes sharing the service's port (SO_REUSEPORT), "
                        "each with its own model")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a server setting, e.g. EMBEDDING__MAX_WAIT_MS=2 (repeatable)")
    return parser


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
