"""Byte transformer: a block equals torch.nn.TransformerEncoderLayer (pre-norm, causal) with the
same weights, attention is causal, the corpus list and hash are deterministic and exposed, and
bits per byte is the loss in base 2."""

from __future__ import annotations

import hashlib
import math
import sysconfig
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optiscope.tasks import make_task
from optiscope.tasks.language import stdlib_sources

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "context": 12, "batch_size": 3, "eval_windows": 4}


def test_block_equals_torch_pre_norm_transformer_encoder_layer_with_causal_mask():
    task = make_task("byte-transformer", **TINY)
    p = task.init_params(0)
    p = {k: v + 0.05 * torch.randn_like(v) for k, v in p.items()}  # make biases and gains non-trivial
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=64, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(p["block0.attn.qkv.weight"])
        layer.self_attn.in_proj_bias.copy_(p["block0.attn.qkv.bias"])
        layer.self_attn.out_proj.weight.copy_(p["block0.attn.proj.weight"])
        layer.self_attn.out_proj.bias.copy_(p["block0.attn.proj.bias"])
        layer.linear1.weight.copy_(p["block0.mlp.fc.weight"])
        layer.linear1.bias.copy_(p["block0.mlp.fc.bias"])
        layer.linear2.weight.copy_(p["block0.mlp.proj.weight"])
        layer.linear2.bias.copy_(p["block0.mlp.proj.bias"])
        for i in (1, 2):
            getattr(layer, f"norm{i}").weight.copy_(p[f"block0.ln{i}.weight"])
            getattr(layer, f"norm{i}").bias.copy_(p[f"block0.ln{i}.bias"])
    layer.eval()
    x = task.train_batch(torch.tensor([0]), 0).per_member["windows"][0, :, :-1]
    h = p["tok_embed"][x] + p["pos_embed"][: x.shape[-1]]
    mask = nn.Transformer.generate_square_subsequent_mask(x.shape[-1])
    with torch.no_grad():
        ref_h = layer(h, src_mask=mask, is_causal=True)
        ref = F.layer_norm(ref_h, (16,), p["ln_f.weight"], p["ln_f.bias"]) @ p["head.weight"].T
    assert torch.allclose(task.logits(p, x), ref, atol=1e-5)


def test_logits_at_a_position_ignore_later_bytes():
    task = make_task("byte-transformer", **{**TINY, "n_layers": 2})
    p = task.init_params(1)
    x = torch.randint(0, 256, (2, 12))
    y = x.clone()
    y[:, 7:] = torch.randint(0, 256, (2, 5))
    a, b = task.logits(p, x), task.logits(p, y)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_stdlib_corpus_is_sorted_hashed_and_exposed_in_metadata():
    task = make_task("byte-transformer", **TINY)
    root = Path(sysconfig.get_paths()["stdlib"])
    names = sorted(p.name for p in root.glob("*.py"))
    assert list(task.corpus_files) == names == [p.name for p in stdlib_sources()]
    digest = hashlib.sha256()
    for n in names:
        digest.update(n.encode() + b"\0")
    digest.update(b"".join((root / n).read_bytes() for n in names))
    meta = task.metadata()
    assert meta["corpus_sha256"] == task.corpus_sha256 == digest.hexdigest()
    assert meta["corpus_files"] == names and meta["corpus_bytes"] > 100_000
    with pytest.raises(AttributeError):
        task.corpus_sha256 = "x"  # read-only


def test_user_corpus_file_and_missing_file_error(tmp_path):
    text = ("the quick brown fox jumps over the lazy dog. " * 40).encode()
    (tmp_path / "c.txt").write_bytes(text)
    task = make_task("byte-transformer", **TINY, corpus=str(tmp_path / "c.txt"))
    assert task.metadata()["corpus_bytes"] == len(text)
    assert bytes(torch.cat([task.train_tokens, task.val_tokens]).tolist()) == text
    with pytest.raises(FileNotFoundError, match="corpus file"):
        make_task("byte-transformer", corpus=str(tmp_path / "nope.txt"))


def test_windows_depend_on_seed_and_step_and_stay_in_the_training_split():
    task = make_task("byte-transformer", **TINY)
    off = task.window_offsets(torch.tensor([0, 1]), 5)
    assert torch.equal(off[1], task.window_offsets(torch.tensor([1]), 5)[0])
    assert not torch.equal(off[0], off[1])
    assert int(off.min()) >= 0 and int(off.max()) <= len(task.train_tokens) - TINY["context"] - 1
    w = task.train_batch(torch.tensor([3]), 2).per_member["windows"][0]
    starts = task.window_offsets(torch.tensor([3]), 2)[0]
    assert torch.equal(w[0], task.train_tokens[starts[0] : starts[0] + TINY["context"] + 1])


def test_bits_per_byte_is_loss_over_ln2_and_initial_loss_is_near_uniform():
    task = make_task("byte-transformer", **TINY)
    out = task.evaluate(task.init_params(0), task.eval_batch(torch.tensor([0]), 0).member(0))
    assert float(out["val_bpb"]) == pytest.approx(float(out["val_loss"]) / math.log(2), rel=1e-6)
    assert float(out["val_loss"]) == pytest.approx(math.log(256), abs=0.1)


def test_roles_cover_embedding_hidden_head_gain_bias():
    roles = make_task("byte-transformer", **TINY).roles()
    assert set(roles.values()) == {"embedding", "hidden", "head", "gain", "bias"}
    assert roles["tok_embed"] == "embedding" and roles["block0.ln1.weight"] == "gain"
    assert roles["block0.attn.qkv.weight"] == "hidden" and roles["head.weight"] == "head"
