"""ELECTRA's two networks (Clark, Luong, Le & Manning 2020, "ELECTRA: Pre-training Text
Encoders as Discriminators Rather Than Generators", ICLR) on the crammed encoder.

- a generator of the discriminator's depth and 1/4 (paper; Base 1/3) of its width
  (`generator_config`), an MLM over the masked positions;
- `gumbel_sample`: one replacement per masked position by the Gumbel-max trick on the fp32
  logits at temperature 1, without gradient (the discrete sample stops it anyway);
- the discriminator, a standard `CrammedEncoder`, reads the originals with the samples
  written in; its binary head is its own ModernBERT prediction head (`head`: dense, GELU,
  LayerNorm) followed by `ElectraModel.disc_out` (Linear(H_d, 1) with bias, Xavier init as
  electra_pytorch does), so the exported `head` is trained.

Embedding sharing. The paper shares token, position and type embeddings and lets the
generator's softmax reuse the token table. Our encoder has rotary positions (no position
table) and no token types, so what is shared is the discriminator's whole `Embeddings` module:
the token table [V, H_d] and the bias-free embedding LayerNorm (electra_pytorch found tying
the norm matters). The generator holds that very module (`ProjectedEmbeddings.shared`), so the
parameters are one tensor (`is`), updated by both losses. When the generator is narrower, a
bias-free linear `project` maps H_d to H_g after the norm (the paper's `embeddings_project`),
and the generator's MLM head maps back: dense H_g -> H_d, GELU, LayerNorm(H_d), then the tied
decoder [V, H_d]. The embedding size thus *is* the discriminator's width, and the exported
discriminator stays a plain ModernBERT (`hasten.models.export_hf.export_discriminator`).

The corruption, the losses, the health monitor and the FLOP count are in
`hasten.pretrain.objectives.electra`; results are in docs/benchmarks.md ("ELECTRA: no gain
over MLM that GLUE-small can see").
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hasten.core.errors import ConfigError, DataError
from hasten.models.encoder import Backbone, CrammedEncoder, Embeddings, EncoderConfig
from hasten.text.masking import IGNORE, sparse_positions

Sparse = Literal["static", "variable"] | None


@torch.no_grad()
def gumbel_sample(logits: torch.Tensor, generator: torch.Generator | None = None,
                  temperature: float = 1.0) -> torch.Tensor:
    """One id per row of `logits` [..., V] drawn from softmax(logits / temperature) by the
    Gumbel-max trick: argmax(logits / T - log(-log u)), in fp32 (electra_pytorch met an fp16
    bug in torch's `gumbel_softmax`) and without gradient. `generator` must live on the
    logits' device."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    x = logits.detach().float()
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(u + 1e-9) + 1e-9)  # as the official sampler
    return torch.argmax(x / temperature + gumbel, dim=-1)


class ProjectedEmbeddings(nn.Module):
    """The generator's embeddings: the discriminator's `Embeddings` module itself (token
    table and norm, shared) then a bias-free linear map to the generator's width (Identity
    when the widths agree)."""

    def __init__(self, shared: Embeddings, hidden: int) -> None:
        super().__init__()
        self.shared = shared
        width = shared.tok_embeddings.embedding_dim
        self.project: nn.Module = (nn.Identity() if width == hidden
                                   else nn.Linear(width, hidden, bias=False))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.shared(input_ids))


class GeneratorHead(nn.Module):
    """MLM head back to the embedding width: dense H_g -> H_d (no bias), GELU, LayerNorm."""

    def __init__(self, hidden: int, embedding_size: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, embedding_size, bias=False)
        self.norm = nn.LayerNorm(embedding_size, eps=eps, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(x)))


class ElectraGenerator(nn.Module):
    """The small MLM generator: shared embeddings (+ projection), `cfg.layers` pre-norm layers
    of width `cfg.hidden`, final norm, `GeneratorHead`, decoder tied to the shared table."""

    def __init__(self, cfg: EncoderConfig, embeddings: Embeddings) -> None:
        super().__init__()
        if embeddings.tok_embeddings.num_embeddings != cfg.vocab_size:
            raise ConfigError(f"generator vocabulary {cfg.vocab_size} differs from the shared "
                              f"embedding's {embeddings.tok_embeddings.num_embeddings}")
        self.config = cfg
        width = embeddings.tok_embeddings.embedding_dim
        self.model = Backbone(cfg)
        self.model.embeddings = ProjectedEmbeddings(embeddings, cfg.hidden)  # drops its own
        self.head = GeneratorHead(cfg.hidden, width, cfg.norm_eps)
        self.decoder = nn.Linear(width, cfg.vocab_size, bias=False)
        self.decoder.weight = embeddings.tok_embeddings.weight
        shared = {id(p) for p in embeddings.parameters()}
        for name, p in self.named_parameters():  # Cramming's init, shared tensors untouched
            if id(p) in shared:
                continue
            if p.dim() >= 2:
                nn.init.normal_(p, std=cfg.init_std)
            else:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)

    @property
    def shared_embeddings(self) -> Embeddings:
        return self.model.embeddings.shared

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-normed hidden states [B, S, H_g]."""
        return self.model(input_ids, attention_mask)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of hidden rows [..., H_g]."""
        return self.decoder(self.head(hidden))


def generator_config(disc_cfg: EncoderConfig, width_ratio: float = 0.25) -> EncoderConfig:
    """The generator's shape: the discriminator's depth, vocabulary, positions and specials;
    width `width_ratio` x hidden rounded to whole heads of the discriminator's head size
    (64 in Base, so heads = hidden / 64 as in the paper); the GLU width scaled alike."""
    if not 0 < width_ratio <= 1:
        raise ConfigError(f"gen_width_ratio must be in (0, 1], got {width_ratio}")
    head_dim = disc_cfg.hidden // disc_cfg.heads
    heads = max(1, round(disc_cfg.hidden * width_ratio / head_dim))
    hidden = heads * head_dim
    inter = max(2, 2 * round(disc_cfg.intermediate * hidden / disc_cfg.hidden / 2))
    return replace(disc_cfg, hidden=hidden, heads=heads, intermediate=inter)


class ElectraModel(nn.Module):
    """Generator and discriminator for replaced-token detection. `forward(input_ids, labels)`
    runs the generator on the masked positions, samples replacements and runs the
    discriminator on the result, so DDP and `torch.compile` wrap one forward; the losses are
    computed from its outputs (`hasten.pretrain.objectives.electra.electra_step`)."""

    def __init__(self, generator: ElectraGenerator, discriminator: CrammedEncoder) -> None:
        super().__init__()
        if generator.shared_embeddings is not discriminator.model.embeddings:
            raise ConfigError("the generator must hold the discriminator's Embeddings module "
                              "(build it with build_electra)")
        self.generator = generator
        self.discriminator = discriminator
        self.disc_out = nn.Linear(discriminator.config.hidden, 1)
        nn.init.xavier_uniform_(self.disc_out.weight)
        nn.init.zeros_(self.disc_out.bias)

    @property
    def config(self) -> EncoderConfig:
        """The discriminator's config (what is exported)."""
        return self.discriminator.config

    def disc_logits(self, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Replaced-token logits [B, S] (positive: replaced)."""
        hidden = self.discriminator(input_ids, attention_mask)
        return self.disc_out(self.discriminator.head(hidden)).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor,
                attention_mask: torch.Tensor | None = None, *, sparse: Sparse = "static",
                static_count: int | None = None, bucket: int = 128,
                sample_generator: torch.Generator | None = None,
                temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """One generator-discriminator pass on masked `input_ids` [B, S] and `labels`
        (original ids where masked, -100 elsewhere). Returns `gen_logits` (fp32, [P, V]) and
        `targets` [P] at the flat positions `pos` [P] the generator predicted (`sparse`:
        "static" pads the masked count up to a multiple of `bucket`, or `static_count`, with
        target -100; "variable" the masked positions only; None every position),
        `disc_logits` (fp32, [B, S], positive: replaced), and, without gradient:
        `disc_input` (originals with the samples written in), `original`, `replaced`
        (masked and the sample differs), `masked` and `weights` (non-padding tokens)."""
        if labels.shape != input_ids.shape or labels.dim() != 2:
            raise DataError(f"input_ids {list(input_ids.shape)} and labels "
                            f"{list(labels.shape)} must both be [batch, seq_len]")
        b, s = labels.shape
        masked = labels != IGNORE
        original = torch.where(masked, labels, input_ids)
        flat_h = self.generator(input_ids, attention_mask).reshape(b * s, -1)
        if sparse is None:
            pos = torch.arange(b * s, device=labels.device)
            targets = labels.reshape(-1)
        elif sparse in ("static", "variable"):
            count = None
            if sparse == "static":
                n = int(masked.sum())
                count = static_count or max(1, min(b * s, -(-n // bucket) * bucket))
            pos, targets = sparse_positions(labels, count)
        else:
            raise ConfigError(f"sparse must be 'static', 'variable' or None, got {sparse!r}")
        gen_logits = self.generator.logits(flat_h.index_select(0, pos)).float()
        sampled = gumbel_sample(gen_logits, sample_generator, temperature)
        flat_orig = original.reshape(-1)
        written = torch.where(targets != IGNORE, sampled, flat_orig.index_select(0, pos))
        disc_input = flat_orig.scatter(0, pos, written).view(b, s)
        weights = original != self.discriminator.config.pad_id
        if attention_mask is not None:
            weights = weights & attention_mask.bool()
        return {"gen_logits": gen_logits, "targets": targets, "pos": pos,
                "disc_logits": self.disc_logits(disc_input, attention_mask).float(),
                "disc_input": disc_input, "original": original,
                "replaced": disc_input != original, "masked": masked, "weights": weights}


def build_electra(disc_cfg: EncoderConfig, gen_width_ratio: float = 0.25,
                  gen_cfg: EncoderConfig | None = None) -> ElectraModel:
    """A discriminator `CrammedEncoder(disc_cfg)` and a generator of the same depth and
    `gen_width_ratio` of its width (paper: 1/4, Base 1/3; `gen_cfg` overrides the shape),
    sharing the token embedding and embedding norm as one set of tensors."""
    gen_cfg = gen_cfg or generator_config(disc_cfg, gen_width_ratio)
    for name in ("vocab_size", "max_len", "pad_id", "mask_id"):
        if getattr(gen_cfg, name) != getattr(disc_cfg, name):
            raise ConfigError(f"generator and discriminator differ in {name}")
    disc = CrammedEncoder(disc_cfg)
    return ElectraModel(ElectraGenerator(gen_cfg, disc.model.embeddings), disc)
