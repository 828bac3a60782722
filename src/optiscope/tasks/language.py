"""Language: a byte-level decoder-only transformer, small enough to train ensembles on a CPU.

Jiang, Malik & Li (2023) show Adam's advantage over SGD on transformers language models; this
task gives the lab one that runs offline anywhere. The model is GPT-2-shaped (Radford et al.
2019): pre-norm blocks (LayerNorm -> causal self-attention -> residual, LayerNorm -> 4x GELU MLP
-> residual), learned position embeddings, a final LayerNorm and an untied head over 256 bytes.
Attention is plain matmuls with a causal mask, so `vmap` over ensemble members batches it.

Corpus: by default the Python standard library's own top-level `.py` files on the running
machine (`sysconfig.get_paths()['stdlib']`), sorted by name and concatenated: real text present
everywhere. It differs between Python versions, so the file list and a SHA-256 of the content are
exposed by `metadata()` (and the `corpus_files` / `corpus_sha256` attributes) for the runner to
store with every run. `corpus = "PATH"` trains on any local file instead. The last
`val_fraction` of the bytes is the validation split (for the stdlib: whole files at the end of
the alphabet, text the model never trained on).

Metrics: validation and training cross-entropy in nats per byte, and bits per byte
(val_loss / ln 2), on fixed evenly spaced windows.
"""

from __future__ import annotations

import hashlib
import math
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from optiscope.core.device import to_device
from optiscope.core.rng import member_generator, random_bits
from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, Task, require
from optiscope.tasks.registry import register_task

VOCAB = 256
STDLIB = "stdlib"


def stdlib_sources() -> list[Path]:
    """The standard library's top-level .py files on this machine, sorted by file name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted((p for p in root.glob("*.py") if p.is_file()), key=lambda p: p.name)


@lru_cache(maxsize=4)
def load_corpus(corpus: str) -> tuple[bytes, tuple[str, ...], str]:
    """(bytes, file names, sha256) of the stdlib corpus or of the file at path `corpus`."""
    if corpus == STDLIB:
        files = stdlib_sources()
        names = tuple(p.name for p in files)
        data = b"".join(p.read_bytes() for p in files)
    else:
        path = Path(corpus).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"task 'byte-transformer': corpus file {str(path)!r} does not exist; set corpus to "
                f"'{STDLIB}' (the Python standard library's sources) or to a readable text file"
            )
        names, data = (str(path.resolve()),), path.read_bytes()
    digest = hashlib.sha256()
    for n in names:
        digest.update(n.encode() + b"\0")
    digest.update(data)
    return data, names, digest.hexdigest()


@lru_cache(maxsize=4)
def corpus_tokens(corpus: str) -> tuple[Tensor, tuple[str, ...], str]:
    """The corpus as an int64 tensor of byte values (cached: tasks never modify it in place)."""
    data, names, sha = load_corpus(corpus)
    return torch.from_numpy(np.frombuffer(data, np.uint8).astype(np.int64)), names, sha


@register_task
class ByteTransformer(Task):
    """Byte-level pre-norm decoder-only transformer on a text corpus (next-byte prediction)."""

    name = "byte-transformer"
    family = "language"
    description = "byte-level pre-norm GPT (2-4 layers) on the Python stdlib sources or a corpus file"
    metrics = (
        MetricInfo("val_loss", "min", "validation cross-entropy per byte", "nats"),
        MetricInfo("val_bpb", "min", "validation bits per byte (val_loss / ln 2)", "bits"),
        MetricInfo("train_loss", "min", "cross-entropy per byte on fixed training windows", "nats"),
    )

    def __init__(
        self,
        *,
        corpus: str = STDLIB,
        d_model: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        context: int = 32,
        batch_size: int = 8,
        val_fraction: float = 0.1,
        eval_windows: int = 32,
    ):
        name = self.name
        require(d_model >= 1, name, "d_model", ">= 1", d_model)
        require(n_layers >= 1, name, "n_layers", ">= 1", n_layers)
        require(n_heads >= 1 and d_model % n_heads == 0, name, "n_heads", f"a divisor of d_model={d_model}", n_heads)
        require(context >= 2, name, "context", ">= 2", context)
        require(batch_size >= 1, name, "batch_size", ">= 1", batch_size)
        require(0 < val_fraction < 1, name, "val_fraction", "in (0, 1)", val_fraction)
        require(eval_windows >= 1, name, "eval_windows", ">= 1", eval_windows)
        self.corpus, self.d_model, self.n_layers, self.n_heads = corpus, d_model, n_layers, n_heads
        self.context, self.batch_size, self.val_fraction, self.eval_windows = context, batch_size, val_fraction, eval_windows
        tokens, self._files, self._sha = corpus_tokens(corpus)
        n_val = int(len(tokens) * val_fraction)
        self.train_tokens, self.val_tokens = tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]
        for split, t in (("training", self.train_tokens), ("validation", self.val_tokens)):
            require(
                len(t) > context + 1, name, "corpus",
                f"a text whose {split} split is longer than context + 1 = {context + 1} bytes", corpus,
            )

    # -- recorded with runs --------------------------------------------------------------------
    @property
    def corpus_files(self) -> tuple[str, ...]:
        """The corpus's files in order (stdlib: file names; a user corpus: its absolute path)."""
        return self._files

    @property
    def corpus_sha256(self) -> str:
        """SHA-256 over the file names and the concatenated content."""
        return self._sha

    def metadata(self) -> dict[str, Any]:
        return {
            "corpus_files": list(self._files),
            "corpus_sha256": self._sha,
            "corpus_bytes": len(self.train_tokens) + len(self.val_tokens),
        }

    # -- parameters ----------------------------------------------------------------------------
    def init_params(self, seed: int) -> Params:
        """GPT-2 init: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 n_layers),
        zero biases, unit LayerNorm gains."""
        gen = member_generator(seed, "init")
        d, std = self.d_model, 0.02
        proj_std = std / math.sqrt(2 * self.n_layers)

        def normal(*shape: int, s: float = std) -> Tensor:
            return torch.randn(*shape, generator=gen) * s

        p: Params = {"tok_embed": normal(VOCAB, d), "pos_embed": normal(self.context, d)}
        for i in range(self.n_layers):
            b = f"block{i}."
            p |= {
                b + "ln1.weight": torch.ones(d), b + "ln1.bias": torch.zeros(d),
                b + "attn.qkv.weight": normal(3 * d, d), b + "attn.qkv.bias": torch.zeros(3 * d),
                b + "attn.proj.weight": normal(d, d, s=proj_std), b + "attn.proj.bias": torch.zeros(d),
                b + "ln2.weight": torch.ones(d), b + "ln2.bias": torch.zeros(d),
                b + "mlp.fc.weight": normal(4 * d, d), b + "mlp.fc.bias": torch.zeros(4 * d),
                b + "mlp.proj.weight": normal(d, 4 * d, s=proj_std), b + "mlp.proj.bias": torch.zeros(d),
            }
        p |= {"ln_f.weight": torch.ones(d), "ln_f.bias": torch.zeros(d), "head.weight": normal(VOCAB, d)}
        return p

    def roles(self) -> dict[str, str]:
        out = {}
        for k in self.init_params(0):
            if k in ("tok_embed", "pos_embed"):
                out[k] = "embedding"
            elif k == "head.weight":
                out[k] = "head"
            elif ".ln" in f".{k}" and k.endswith(".weight"):
                out[k] = "gain"
            elif k.endswith(".bias"):
                out[k] = "bias"
            else:
                out[k] = "hidden"
        return out

    # -- the model -----------------------------------------------------------------------------
    def _attention(self, params: Params, prefix: str, h: Tensor) -> Tensor:
        t, d = h.shape[-2], self.d_model
        hd = d // self.n_heads
        qkv = F.linear(h, params[prefix + "qkv.weight"], params[prefix + "qkv.bias"])
        q, k, v = (z.unflatten(-1, (self.n_heads, hd)).transpose(-2, -3) for z in qkv.split(d, dim=-1))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # (..., heads, t, t)
        causal = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(-2, -3).flatten(-2)
        return F.linear(out, params[prefix + "proj.weight"], params[prefix + "proj.bias"])

    def logits(self, params: Params, x: Tensor) -> Tensor:
        """x: (..., t) int64 bytes -> (..., t, 256) next-byte logits."""
        d = self.d_model
        h = params["tok_embed"][x] + params["pos_embed"][: x.shape[-1]]
        for i in range(self.n_layers):
            b = f"block{i}."
            a = F.layer_norm(h, (d,), params[b + "ln1.weight"], params[b + "ln1.bias"])
            h = h + self._attention(params, b + "attn.", a)
            m = F.layer_norm(h, (d,), params[b + "ln2.weight"], params[b + "ln2.bias"])
            m = F.gelu(F.linear(m, params[b + "mlp.fc.weight"], params[b + "mlp.fc.bias"]))
            h = h + F.linear(m, params[b + "mlp.proj.weight"], params[b + "mlp.proj.bias"])
        h = F.layer_norm(h, (d,), params["ln_f.weight"], params["ln_f.bias"])
        return h @ params["head.weight"].T

    def _xent(self, params: Params, windows: Tensor) -> Tensor:
        logits = self.logits(params, windows[..., :-1])
        return F.cross_entropy(logits.reshape(-1, VOCAB), windows[..., 1:].reshape(-1))

    # -- Task interface ------------------------------------------------------------------------
    def loss(self, params: Params, batch: Batch) -> Tensor:
        return self._xent(params, batch["windows"])

    def window_offsets(self, seeds: Tensor, step: int) -> Tensor:
        """(S, batch_size) start offsets into the training split; a function of (seed, step)."""
        span = len(self.train_tokens) - self.context - 1
        bits = random_bits(seeds, "text-windows", step, self.batch_size)
        return torch.from_numpy((bits % np.uint64(span + 1)).astype(np.int64))

    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        idx = self.window_offsets(seeds, step)[..., None] + torch.arange(self.context + 1)
        return MemberBatch(per_member={"windows": self.train_tokens[to_device(idx, self.train_tokens.device)]})

    def _fixed_windows(self, tokens: Tensor) -> Tensor:
        starts = torch.linspace(0, len(tokens) - self.context - 1, self.eval_windows).long()
        return tokens[starts.to(tokens.device)[:, None] + torch.arange(self.context + 1, device=tokens.device)]

    def batches_per_epoch(self) -> int | None:
        """Batches that see as many bytes as the training split (windows are drawn at random)."""
        return max(1, len(self.train_tokens) // (self.batch_size * self.context))

    def eval_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        return MemberBatch(
            shared={"val": self._fixed_windows(self.val_tokens), "train": self._fixed_windows(self.train_tokens)}
        )

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        val = self._xent(params, batch["val"])
        return {"val_loss": val, "val_bpb": val / math.log(2), "train_loss": self._xent(params, batch["train"])}

    def to(self, device: torch.device | str) -> ByteTransformer:
        self.train_tokens, self.val_tokens = self.train_tokens.to(device), self.val_tokens.to(device)
        return self
