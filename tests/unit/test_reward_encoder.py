"""The encoder's backends on the real packaged all-MiniLM-L6-v2: torch, ONNX fp32, ONNX int8.

One ONNX export (fp32, then int8 from it) is made for the module, ~15-30 s on 2 busy cores, so
the tests that use it are marked slow. The texts are the 60 real pairs the package ships.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import typing

import numpy as np
import pytest
from pydantic import ValidationError

from rlthf_backend.core.reward import onnx_export
from rlthf_backend.core.reward.embedding_config import EmbeddingRewardConfig
from rlthf_backend.core.reward.encoder import (
    ENCODER_BACKENDS,
    TextEncoder,
    encoder_identity,
    packaged_minilm_dir,
    resolve_backend,
)
from rlthf_backend.core.reward.onnx_encoder import UnsupportedForOnnx, read_layout
from rlthf_backend.demo import load_sample_pairs
from rlthf_backend.app.settings import Settings

MINILM = str(packaged_minilm_dir())


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    texts = [t for p in load_sample_pairs() for t in (p["prompt"], p["response_a"], p["response_b"])]
    return list(dict.fromkeys(texts))


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("onnx-exports")


@pytest.fixture(scope="module")
def torch_vectors(real_texts: list[str]) -> np.ndarray:
    return TextEncoder(cache_dir=False, backend="torch", device="cpu").encode(real_texts)


def _encoder(backend: str, export_root, **kw) -> TextEncoder:
    return TextEncoder(cache_dir=False, backend=backend, device="cpu", export_dir=export_root, **kw)


# ------------------------------------------------------------------ agreement with torch
@pytest.mark.slow
def test_int8_vectors_agree_with_torch_on_real_texts(real_texts, torch_vectors, export_root):
    assert len(real_texts) > 150 and max(map(len, real_texts)) > 2000  # some are cut at 256 tokens
    int8 = _encoder("onnx-int8", export_root).encode(real_texts)
    assert int8.shape == torch_vectors.shape and int8.dtype == np.float32
    cosine = np.sum(int8 * torch_vectors, axis=1)  # both unit length (the model normalises)
    assert cosine.mean() > 0.98 and cosine.min() > 0.9, (cosine.mean(), cosine.min())
    assert np.abs(cosine - 1).max() > 1e-4  # int8 really is another computation, not torch again


@pytest.mark.slow
def test_fp32_onnx_vectors_match_torch(real_texts, torch_vectors, export_root):
    fp32 = _encoder("onnx", export_root).encode(real_texts)
    np.testing.assert_allclose(fp32, torch_vectors, atol=2e-4)


@pytest.mark.slow
def test_rows_keep_input_order_whatever_the_batching(real_texts, export_root):
    texts = real_texts[:40]
    whole = _encoder("onnx", export_root, batch_size=64).encode(texts)
    one_by_one = _encoder("onnx", export_root, batch_size=1).encode(texts[::-1])[::-1]
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    # int8 activations are scaled per batch, so a text's vector moves a little with its batch.
    int8_whole = _encoder("onnx-int8", export_root, batch_size=64).encode(texts)
    int8_alone = _encoder("onnx-int8", export_root, batch_size=1).encode(texts[::-1])[::-1]
    assert np.sum(int8_whole * int8_alone, axis=1).min() > 0.98


# ------------------------------------------------------------------ the exported folder
@pytest.mark.slow
def test_a_second_encoder_reuses_the_export(real_texts, export_root, monkeypatch):
    _encoder("onnx-int8", export_root).encode(real_texts[:3])
    folder = onnx_export.export_folder(export_root, encoder_identity(MINILM), "int8")
    stamp = (folder / "export.json").stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "_export_fp32", no_export)
    monkeypatch.setattr(onnx_export, "_quantize_int8", no_export)
    # Another thread count is another ONNX Runtime session: it must come from the same folder.
    vectors = _encoder("onnx-int8", export_root, num_threads=1).encode(real_texts[:3])
    assert vectors.shape == (3, 384)
    assert (folder / "export.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated model", "no record", "record of another model"])
def test_a_damaged_export_is_made_again(export_root, tmp_path, damage):
    identity = encoder_identity(MINILM)
    good = onnx_export.ensure_export(read_layout(MINILM).transformer_dir, identity, "int8", export_root)
    root = tmp_path / "exports"
    folder = onnx_export.export_folder(root, identity, "int8")
    folder.parent.mkdir(parents=True)
    # Start from a copy of the good export (cheap), then damage it.
    for variant in ("fp32", "int8"):
        src = onnx_export.export_folder(export_root, identity, variant)
        dst = onnx_export.export_folder(root, identity, variant)
        dst.mkdir()
        for f in src.iterdir():
            (dst / f.name).write_bytes(f.read_bytes())
    if damage == "truncated model":
        data = (folder / "model.onnx").read_bytes()
        (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    elif damage == "no record":
        (folder / "export.json").unlink()
    else:
        record = json.loads((folder / "export.json").read_text())
        (folder / "export.json").write_text(json.dumps({**record, "source_identity": "local:other:0"}))

    remade = onnx_export.ensure_export(read_layout(MINILM).transformer_dir, identity, "int8", root)
    assert remade.folder == folder
    assert remade.record.onnx_sha256 == good.record.onnx_sha256  # quantising is deterministic
    assert (folder / "model.onnx").stat().st_size == good.record.onnx_bytes
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no scratch folder left


def _fake_export(calls_file):
    def export(transformer_dir, out):
        with open(calls_file, "a") as f:
            f.write("export\n")
        time.sleep(0.5)  # long enough for the other process to arrive while this one exports
        out.write_bytes(b"not really onnx")
        return ["input_ids", "attention_mask"]
    return export


def _export_in_child(root, calls_file):
    onnx_export._export_fp32 = _fake_export(calls_file)
    onnx_export.ensure_export(root, "local:model:0123", "fp32", root)


def test_two_processes_export_a_model_once(tmp_path):
    calls = tmp_path / "calls.txt"
    fork = multiprocessing.get_context("fork")  # the children run this module's fake exporter
    children = [fork.Process(target=_export_in_child, args=(tmp_path, calls)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    assert [c.exitcode for c in children] == [0, 0]
    assert calls.read_text().splitlines() == ["export"]
    export = onnx_export.ensure_export(tmp_path, "local:model:0123", "fp32", tmp_path)
    assert export.onnx_file.read_bytes() == b"not really onnx"
    assert export.record.input_names == ("input_ids", "attention_mask")


# ------------------------------------------------------------------ cache identities
@pytest.mark.slow
def test_backends_never_share_cache_entries(real_texts, export_root, tmp_path):
    encoders = {b: TextEncoder(cache_dir=tmp_path, backend=b, device="cpu", export_dir=export_root)
                for b in ("torch", "onnx", "onnx-int8")}
    identities = {b: e.cache_identity for b, e in encoders.items()}
    assert len(set(identities.values())) == 3
    assert identities["torch"] == encoder_identity(MINILM)  # the namespace torch vectors always had
    texts = real_texts[:5]
    encoders["onnx-int8"].encode(texts)
    for backend in ("torch", "onnx"):
        encoders[backend].encode(texts)
        assert encoders[backend].n_encoded == 5, f"{backend} was served int8 vectors from the cache"
    again = TextEncoder(cache_dir=tmp_path, backend="onnx-int8", device="cpu", export_dir=export_root)
    again.encode(texts)
    assert again.n_encoded == 0


# ------------------------------------------------------------------ choosing a backend
def test_auto_is_int8_on_cpu_and_torch_on_a_gpu():
    assert resolve_backend("auto", "cpu", MINILM) == "onnx-int8"
    assert resolve_backend("auto", "cuda", MINILM) == "torch"
    assert resolve_backend("auto", "cuda:1", MINILM) == "torch"
    assert resolve_backend("onnx", "cpu", MINILM) == "onnx"
    assert resolve_backend("torch", "cpu", MINILM) == "torch"


def test_auto_falls_back_to_torch_for_models_onnx_cannot_run(tmp_path):
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    assert resolve_backend("auto", "cpu", str(tmp_path)) == "torch"
    assert resolve_backend("auto", "cpu", "sentence-transformers/some-hub-model") == "torch"
    with pytest.raises(UnsupportedForOnnx, match=r"Transformer, Pooling, Dense.*use the torch backend"):
        read_layout(tmp_path)
    with pytest.raises(UnsupportedForOnnx, match="need a local model folder"):
        TextEncoder("sentence-transformers/some-hub-model", cache_dir=False, backend="onnx", device="cpu").encode(["x"])


def test_layout_of_the_packaged_model():
    layout = read_layout(MINILM)
    assert (layout.pooling, layout.normalize, layout.lowercase) == ("mean", True, False)


def test_bad_backend_values_are_refused_clearly():
    with pytest.raises(ValueError, match="encoder backend must be one of auto, torch, onnx, onnx-int8; got 'int8'"):
        TextEncoder(backend="int8", cache_dir=False)
    with pytest.raises(ValueError, match="encoder backend must be one of"):
        EmbeddingRewardConfig(backend="onnx-fp16")
    with pytest.raises(ValidationError, match="rm_encoder_backend"):
        Settings(rm_encoder_backend="tensorrt")


def test_the_setting_offers_exactly_the_encoder_backends_and_reaches_the_config(monkeypatch):
    assert typing.get_args(Settings.model_fields["rm_encoder_backend"].annotation) == ENCODER_BACKENDS
    assert Settings().rm_encoder_backend == EmbeddingRewardConfig().backend == "auto"
    monkeypatch.setenv("RLTHF_RM_ENCODER_BACKEND", "torch")
    spec = Settings().reward_model_spec()
    assert EmbeddingRewardConfig.from_dict(spec.options).backend == "torch"
