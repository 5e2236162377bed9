"""The embedding service on a real in-process server with real open_clip models: the tiny CLIP
the project trains on synthetic shapes (meaning, parity, errors) and ViT-B-32 with random
weights (the production architecture)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from prometheus_client import REGISTRY

import corpus
import tiny_clip
from sensorium.client import Client, ClientError
from sensorium.embedding.embedder import fingerprint
from sensorium.embedding.remote import EmbeddingClient
from sensorium.embedding.v1 import embedding_service_pb2 as pb
from sensorium.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from sensorium.type.v1 import errors_pb2


@pytest.fixture(scope="module")
def shapes_model() -> Path:
    """The project-trained tiny CLIP (cached across runs by code version, steps and seed)."""
    return tiny_clip.build()


@pytest.fixture
async def embed_client(start_server, shapes_model):
    clients: list[Client] = []

    async def connect(**embedding: object) -> Client:
        settings = {"model": f"local-dir:{shapes_model}", "pretrained": "", "max_wait_ms": 20.0,
                    **embedding}
        server = await start_server(services=["embedding"], embedding=settings, device="cpu")
        client = Client(f"127.0.0.1:{server.port}", timeout=60)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.channel.close()


def _name(reason: int) -> str:
    return errors_pb2.ErrorReason.Name(reason)


def _reason(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.details.code.name, error.value.details.reason


def _noise_png(seed: int, size: tuple[int, int] = (40, 48)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return tiny_clip.png(Image.fromarray(pixels, "RGB"))


def _class_images(per_class: int, seed: int) -> list[tuple[int, bytes]]:
    rng = np.random.default_rng(seed)
    return [(index, tiny_clip.png(tiny_clip.draw(shape, colour, rng)))
            for _ in range(per_class) for index, (shape, colour) in enumerate(tiny_clip.CLASSES)]


def _cos(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _batches() -> tuple[float, float]:
    count = REGISTRY.get_sample_value("sensorium_batch_size_count", {"model": "embedding"}) or 0.0
    total = REGISTRY.get_sample_value("sensorium_batch_size_sum", {"model": "embedding"}) or 0.0
    return count, total


async def test_space_health_and_limits_are_reported(embed_client, shapes_model):
    from safetensors.torch import load_file

    client = await embed_client(max_image_pixels=1234, max_image_bytes=5678)
    assert await client.health("sensorium.embedding.v1.EmbeddingService") == "SERVING"
    info = await EmbeddingClient(client).embedding_space()
    assert info.space.dimension == tiny_clip.TINY_CONFIG["embed_dim"]
    assert info.space.model == f"local-dir:{shapes_model.name}"
    assert info.space.pretrained == "open_clip_model.safetensors"
    assert info.space.normalized
    assert info.space.weights_sha256 == fingerprint(load_file(shapes_model / "open_clip_model.safetensors"))
    assert info.context_length == 16  # read from the tokenizer the model's config names
    assert info.scoring_function == pb.SCORING_FUNCTION_SOFTMAX
    assert (info.max_image_pixels, info.max_image_bytes, info.device) == (1234, 5678, "cpu")


async def test_a_red_circle_ranks_the_red_circle_first_and_zero_shot_works(embed_client):
    client = await embed_client()
    captions = [tiny_clip.caption(shape, colour) for shape, colour in tiny_clip.CLASSES]
    gallery = _class_images(1, seed=7)
    images = await EmbeddingClient(client).embed_images([data for _, data in gallery])
    query = (await EmbeddingClient(client).embed_texts(["a red circle"])).results[0].vector.values
    ranked = sorted(range(len(gallery)), key=lambda i: -np.dot(images.results[i].vector.values, query))
    assert tiny_clip.CLASSES[gallery[ranked[0]][0]] == ("circle", "red")

    test_set = _class_images(5, seed=11)  # fresh images, never seen in training
    response = await EmbeddingClient(client).score([data for _, data in test_set], captions)
    assert response.scoring_function == pb.SCORING_FUNCTION_SOFTMAX
    predictions = [int(np.argmax(row.probabilities)) for row in response.rows]
    accuracy = np.mean([p == label for p, (label, _) in zip(predictions, test_set, strict=True)])
    assert accuracy >= 0.6, accuracy
    row = response.rows[0]
    assert sum(row.probabilities) == pytest.approx(1.0, abs=1e-4)
    assert len(row.similarities) == len(captions) and all(-1 <= s <= 1 for s in row.similarities)


async def test_vectors_equal_open_clip_in_process_on_every_path(embed_client, shapes_model):
    """Parity: unary (many concurrent single-item calls), multi-item, and stream, with many
    distinct inputs at once so that a mix-up between callers would show."""
    import open_clip

    client = await embed_client(max_batch_size=8, max_wait_ms=30.0)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{shapes_model}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{shapes_model}")
    model.eval()
    images = [_noise_png(seed, (30 + seed, 60 - seed)) for seed in range(24)]
    texts = [f"a {colour} {shape} number {i}" for i, (shape, colour) in enumerate(tiny_clip.CLASSES * 2)]
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.open(io.BytesIO(data)).convert("RGB")) for data in images])
        expected_images = model.encode_image(pixels, normalize=True).numpy()
        expected_texts = model.encode_text(tokenizer(texts), normalize=True).numpy()

    before = _batches()
    singles = await asyncio.gather(
        *(EmbeddingClient(client).embed_images(
            [data]) for data in images), *(EmbeddingClient(client).embed_texts([text]) for text in texts)
    )
    after = _batches()
    got = [r.results[0].vector.values for r in singles]
    for vector, want in zip(got, [*expected_images, *expected_texts], strict=True):
        assert _cos(vector, want) >= 0.9999
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    calls, items = after[0] - before[0], after[1] - before[1]
    assert items == len(images) + len(texts)
    assert calls < items / 2, "single-item calls from concurrent clients were not batched together"

    many = await EmbeddingClient(client).embed_images(images)
    for result, want in zip(many.results, expected_images, strict=True):
        assert _cos(result.vector.values, want) >= 0.9999
        assert result.width and result.height

    async def requests():
        for i, data in enumerate(images):
            yield pb.StreamEmbedRequest(id=f"image-{i}", image=data)
            yield pb.StreamEmbedRequest(id=f"text-{i}", text=texts[i])

    answers = {m.id: m async for m in pb_grpc.EmbeddingServiceStub(client.channel).StreamEmbed(requests())}
    assert len(answers) == 2 * len(images)
    for i in range(len(images)):
        assert _cos(answers[f"image-{i}"].vector.values, expected_images[i]) >= 0.9999
        assert _cos(answers[f"text-{i}"].vector.values, expected_texts[i]) >= 0.9999


async def test_bad_images_fail_alone(embed_client):
    client = await embed_client(max_image_bytes=50_000, max_image_pixels=1_000_000)
    good = _noise_png(1)
    huge = tiny_clip.png(Image.new("1", (1200, 1000)))  # small file, 1.2 MP
    response = await EmbeddingClient(client).embed_images(
        [good, b"", b"not an image at all", huge, b"\0" * 60_000, good])
    names = [_name(r.error.reason) if r.HasField("error") else "" for r in response.results]
    assert names == ["", "ERROR_REASON_INPUT_EMPTY", "ERROR_REASON_IMAGE_UNDECODABLE",
                     "ERROR_REASON_IMAGE_TOO_LARGE", "ERROR_REASON_INPUT_TOO_LARGE", ""]
    assert response.results[0].vector.values == response.results[5].vector.values
    assert "1200x1000" in response.results[3].error.message
    # The limits are machine-readable too, under the same keys a failed call's ErrorInfo uses.
    assert dict(response.results[3].error.metadata) == {
        "limit_pixels": "1000000", "setting": "SENSORIUM_EMBEDDING__MAX_IMAGE_PIXELS"}
    assert dict(response.results[4].error.metadata) == {
        "limit_bytes": "50000", "size_bytes": "60000", "setting": "SENSORIUM_EMBEDDING__MAX_IMAGE_BYTES"}
    only_bad = await EmbeddingClient(client).embed_images([b"junk"])
    assert only_bad.results[0].error.message  # still OK: per-item errors, not a failed call


async def test_corpus_images(embed_client, corpus_dir):
    client = await embed_client()
    files = {f["file"]: f for f in corpus.manifest("image")}
    names = sorted(files)
    response = await EmbeddingClient(client).embed_images(
        [(corpus_dir / name).read_bytes() for name in names])
    for name, result in zip(names, response.results, strict=True):
        expected = files[name]["expected"]
        if "extents" in name:
            # Its bomb is in the second frame; only the first (100x100) is ever decoded.
            assert (result.width, result.height) == (100, 100), result.error.message
        elif expected.get("should_fail"):
            assert result.HasField("error"), name
            want = "IMAGE_TOO_LARGE" if "bomb" in name or "reallybig" in name else "IMAGE_UNDECODABLE"
            assert _name(result.error.reason) == f"ERROR_REASON_{want}", name
        else:
            assert not result.HasField("error"), (name, result.error.message)
            if "size" in expected:
                assert [result.width, result.height] == expected["size"]


async def test_exif_orientation_is_applied(embed_client):
    client = await embed_client()
    upright = Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 24, 3), dtype=np.uint8))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes, sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    rotated, plain = (await EmbeddingClient(client).embed_images(
        [buffer.getvalue(), tiny_clip.png(upright)])).results
    assert (rotated.width, rotated.height) == (24, 40)
    assert _cos(rotated.vector.values, plain.vector.values) >= 0.9999


async def test_long_texts_truncate_or_fail_and_empty_texts_fail(embed_client):
    client = await embed_client()
    long = "a red circle " * 10
    truncated, short, empty = (await EmbeddingClient(client).embed_texts(
        [long, "a red circle", "  "])).results
    assert truncated.truncated and truncated.token_count == 32
    assert not short.truncated and short.token_count == 5
    assert _name(empty.error.reason) == "ERROR_REASON_INPUT_EMPTY"
    strict = pb.EmbedOptions(truncation=pb.TRUNCATION_MODE_REJECT)
    rejected, fine = (await EmbeddingClient(client).embed_texts([long, "a red circle"], strict)).results
    assert "32 tokens" in rejected.error.message and not fine.HasField("error")

    strict_server = await embed_client(strict_truncation=True)
    by_default = (await EmbeddingClient(strict_server).embed_texts([long])).results[0]
    assert by_default.HasField("error")
    allowed = pb.EmbedOptions(truncation=pb.TRUNCATION_MODE_TRUNCATE)
    assert (await EmbeddingClient(strict_server).embed_texts([long], allowed)).results[0].truncated


async def test_unnormalized_vectors_say_so(embed_client):
    client = await embed_client()
    raw = (await EmbeddingClient(client).embed_texts(
        ["a blue square"], pb.EmbedOptions(unnormalized=True))).results[0]
    unit = (await EmbeddingClient(client).embed_texts(["a blue square"])).results[0]
    assert not raw.vector.space.normalized and unit.vector.space.normalized
    assert np.linalg.norm(raw.vector.values) != pytest.approx(1.0, abs=1e-3)
    assert _cos(raw.vector.values, unit.vector.values) >= 0.9999


async def test_request_limits(embed_client):
    client = await embed_client(max_items_per_request=3)
    with pytest.raises(ClientError) as error:
        await EmbeddingClient(client).embed_texts([])
    assert _reason(error) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    with pytest.raises(ClientError) as error:
        await EmbeddingClient(client).embed_images([_noise_png(i) for i in range(4)])
    assert _reason(error) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    assert "MAX_ITEMS_PER_REQUEST" in error.value.details.message
    with pytest.raises(ClientError) as error:
        await EmbeddingClient(client).score([_noise_png(1)], ["a red circle", ""])
    assert _reason(error) == ("INVALID_ARGUMENT", "INPUT_EMPTY")


async def test_score_marks_bad_images_per_row(embed_client):
    client = await embed_client()
    response = await EmbeddingClient(client).score(
        [b"broken", _noise_png(2)], ["a red circle", "a blue square"])
    assert response.rows[0].HasField("error") and not response.rows[0].probabilities
    assert len(response.rows[1].probabilities) == 2
    assert response.space.dimension == tiny_clip.TINY_CONFIG["embed_dim"]


async def test_stream_answers_each_item_with_its_id_and_error(embed_client):
    client = await embed_client()

    async def requests():
        yield pb.StreamEmbedRequest(id="bad", image=b"nope")
        yield pb.StreamEmbedRequest(id="empty")
        yield pb.StreamEmbedRequest(id="long", text="a red circle " * 10,
                                    options=pb.EmbedOptions(truncation=pb.TRUNCATION_MODE_REJECT))
        yield pb.StreamEmbedRequest(id="ok", text="a green triangle",
                                    options=pb.EmbedOptions(unnormalized=True))

    answers = {m.id: m async for m in pb_grpc.EmbeddingServiceStub(client.channel).StreamEmbed(requests())}
    assert set(answers) == {"bad", "empty", "long", "ok"}
    assert answers["bad"].error.message and answers["empty"].error.message and answers["long"].error.message
    assert answers["ok"].vector.values and not answers["ok"].vector.space.normalized


async def test_missing_weights_fail_start_up_with_the_fix(start_server, tmp_path):
    from sensorium.errors import ServiceStartError

    settings = {"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"}
    with pytest.raises(ServiceStartError) as error:
        await start_server(services=["embedding"], embedding=settings, model_dir=tmp_path, device="cpu")
    assert "sensorium models embedding" in str(error.value)
    assert "ViT-B-32/laion2b_s34b_b79k" in str(error.value)

    server = await start_server(services=["embedding"], embedding=settings, model_dir=tmp_path,
                                device="cpu", profile="dev")
    async with Client(f"127.0.0.1:{server.port}") as client:
        assert await client.health("sensorium.embedding.v1.EmbeddingService") == "NOT_SERVING"
        with pytest.raises(ClientError) as call:
            await EmbeddingClient(client).embed_texts(["a red circle"])
    assert call.value.details.code.name == "UNAVAILABLE"


async def test_vit_b_32_architecture_runs_with_random_weights(start_server):
    server = await start_server(services=["embedding"], device="cpu",
                                embedding={"model": "ViT-B-32", "pretrained": ""})
    async with Client(f"127.0.0.1:{server.port}") as client:
        info = await EmbeddingClient(client).embedding_space()
        assert (info.space.model, info.space.dimension, info.context_length) == ("ViT-B-32", 512, 77)
        response = await EmbeddingClient(client).embed_images([_noise_png(5, (300, 200))])
        assert len(response.results[0].vector.values) == 512
        text = (await EmbeddingClient(client).embed_texts(["word " * 100])).results[0]
        assert text.truncated and text.token_count == 102
