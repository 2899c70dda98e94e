"""Response generation: greedy, beam and top-k / nucleus sampling sharing one search loop.

The shape follows ParlAI's ``torch_generator_agent``: one loop (:func:`generate`) owns what every
strategy shares (encoding once, expanding rows to hypotheses, n-gram blocking, minimum length,
finishing on EOS, dropping finished rows, the maximum length), and each strategy is only its
``select_paths`` step, which turns the next-token log-probabilities of the live hypotheses into
the next set of hypotheses:

    select_paths(logprobs[N, K, V], prior_scores[N, K])
        -> hyp_ids[N, K], token_ids[N, K], scores[N, K]

(N live rows, K hypotheses per row: the beam size for beam search, 1 otherwise). Greedy keeps
the arg-max; beam keeps the K best continuations over all K x V candidates; top-k and nucleus
sample one token from the truncated, temperature-scaled distribution. A beam of 1 is greedy.

The model contract (docs/DESIGN.md §6): ``model.encode(batch) -> state``;
``model.decode_step(state, prefix[B, t]) -> log-probs[B, V]`` of the token after ``prefix``
(which starts with SOS); ``state.index_select(idx)`` reorders, repeats or drops rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from kemp_kg.schema import (
    CLS_ID,
    EOS_ID,
    KNOWLEDGE_ID,
    LISTENER_ID,
    PAD_ID,
    SOS_ID,
    SPEAKER_ID,
    UNK_ID,
)

#: Special tokens a decoder may never emit (a reply with ``<cls>`` in it was possible before).
NEVER_GENERATED: list[int] = [PAD_ID, SOS_ID, CLS_ID, SPEAKER_ID, LISTENER_ID, KNOWLEDGE_ID]

Strategy = Literal["greedy", "beam", "topk", "topp"]
STRATEGIES: tuple[str, ...] = ("greedy", "beam", "topk", "topp")

__all__ = [
    "DECODE_PRESETS",
    "DecodeConfig",
    "STRATEGIES",
    "banned_tokens",
    "decode_preset",
    "generate",
    "select_paths",
]


class EncoderStateLike(Protocol):
    def index_select(self, index: torch.Tensor) -> EncoderStateLike: ...


class GeneratorModel(Protocol):
    def encode(self, batch: Any) -> EncoderStateLike: ...

    def decode_step(self, state: Any, prefix: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class DecodeConfig:
    """How to decode responses (frozen; presets are the functions in :data:`DECODE_PRESETS`).

    Attributes:
        strategy: ``greedy`` | ``beam`` | ``topk`` | ``topp`` (nucleus sampling).
        beam_size: hypotheses kept per example (``beam`` only).
        no_repeat_ngram: block any n-gram of this order from occurring twice in a response
            (0 = off). Applies to every strategy.
        top_k: sample among the ``top_k`` most likely tokens (``topk``).
        top_p: sample among the smallest set of tokens whose probability reaches ``top_p``
            (``topp``).
        temperature: divides the log-probabilities before sampling (``topk``/``topp``; greedy and
            beam rank by the model's own log-probabilities).
        length_penalty: alpha of the GNMT penalty ``((5 + length) / 6) ** alpha`` that divides a
            finished beam hypothesis' log-probability (0 = plain sum; > 0 favours longer ones).
        max_len: the most tokens generated per response (EOS excluded); 30 as in the paper.
        min_len: EOS is blocked until this many tokens have been generated.
        seed: seed of the sampling generator (same seed, same batch -> same responses).
        block_unk: never generate ``<unk>`` (the vocabulary comes from the training split, so
            references hold ``<unk>`` for unseen words; an ``<unk>`` reply would both read badly
            and "match" those in BLEU).
    """

    strategy: Strategy = "greedy"
    beam_size: int = 5
    no_repeat_ngram: int = 0
    top_k: int = 10
    top_p: float = 0.9
    temperature: float = 1.0
    length_penalty: float = 0.0
    max_len: int = 30
    min_len: int = 1
    seed: int = 0
    block_unk: bool = True

    def __post_init__(self) -> None:
        for name in ("top_p", "temperature", "length_penalty"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be >= 0, got {self.no_repeat_ngram}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")
        if not 0 <= self.min_len <= self.max_len:
            raise ValueError(f"min_len must be in [0, max_len={self.max_len}], got {self.min_len}")

    @property
    def width(self) -> int:
        """Hypotheses per example: ``beam_size`` for beam search, else 1."""
        return self.beam_size if self.strategy == "beam" else 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (recorded next to evaluation metrics)."""
        return dataclasses.asdict(self)


def greedy() -> DecodeConfig:
    """Arg-max decoding, as the official KEMP evaluation (max 30 tokens)."""
    return DecodeConfig(strategy="greedy")


def beam() -> DecodeConfig:
    """Beam search, 5 hypotheses, trigram blocking, GNMT length penalty 0.6."""
    return DecodeConfig(strategy="beam", beam_size=5, no_repeat_ngram=3, length_penalty=0.6)


def topk() -> DecodeConfig:
    """Top-k sampling: k = 10, temperature 1, trigram blocking."""
    return DecodeConfig(strategy="topk", top_k=10, no_repeat_ngram=3)


def topp() -> DecodeConfig:
    """Nucleus sampling: p = 0.9, temperature 1, trigram blocking."""
    return DecodeConfig(strategy="topp", top_p=0.9, no_repeat_ngram=3)


def diverse() -> DecodeConfig:
    """The diversity-raising option (issue 5): nucleus sampling p = 0.9 at temperature 0.7
    with trigram blocking.

    Corpus-level Distinct-n is low because a greedy model gives the same safe reply to many
    different contexts (the official KEMP says "i am sure you will do great !" to > 10% of the
    test set); sampling from the nucleus breaks that collapse across examples, the lowered
    temperature keeps each reply close to the model's most likely words, and trigram blocking
    removes loops inside a reply. Perplexity and emotion accuracy are teacher-forced and do not
    depend on the decoding.
    """
    return DecodeConfig(strategy="topp", top_p=0.9, temperature=0.7, no_repeat_ngram=3)


#: Named decoding presets (``--decode NAME``).
DECODE_PRESETS: Mapping[str, Callable[[], DecodeConfig]] = {
    "greedy": greedy,
    "beam": beam,
    "topk": topk,
    "topp": topp,
    "diverse": diverse,
}


def decode_preset(name: str, **overrides: Any) -> DecodeConfig:
    """The preset ``name`` with the given fields replaced (``None`` values are ignored).

    Raises:
        ValueError: an unknown preset name.
    """
    if name not in DECODE_PRESETS:
        raise ValueError(
            f"unknown decoding preset {name!r}; choose one of {sorted(DECODE_PRESETS)}"
        )
    config = DECODE_PRESETS[name]()
    changes = {key: value for key, value in overrides.items() if value is not None}
    return dataclasses.replace(config, **changes) if changes else config


# --------------------------------------------------------------------------------------------
# The one step every strategy specialises
# --------------------------------------------------------------------------------------------


def _sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of ``probs`` [M, V] (rows sum to 1) -> token ids [M]."""
    if probs.device.type == "cpu" or generator is None:
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    # CUDA: draw on the CPU generator for reproducibility across devices
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)


def select_paths(
    config: DecodeConfig,
    logprobs: torch.Tensor,
    prior_scores: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose the next hypotheses of every row: the step greedy, beam and sampling share.

    Args:
        config: the decoding configuration (its ``strategy`` picks the rule).
        logprobs: next-token log-probabilities of each live hypothesis, already blocked
            (``-inf`` where a token is forbidden).
        prior_scores: summed log-probability of each hypothesis so far (``-inf`` for an empty
            beam slot).
        generator: the sampling generator (``topk``/``topp``).

    Returns:
        ``(hyp_ids, token_ids, scores)``: the hypothesis each new one extends, the token it
        appends, and its new summed log-probability (the model's, not the temperature-scaled).

    Shapes:
        logprobs [N, K, V], prior_scores [N, K] -> each output [N, K]
    """
    rows, width, vocab = logprobs.shape
    if config.strategy == "beam":
        candidates = (prior_scores.unsqueeze(-1) + logprobs).view(rows, width * vocab)
        scores, flat = candidates.topk(width, dim=-1)  # [N, K]
        return flat // vocab, flat % vocab, scores
    if width != 1:
        raise ValueError(f"{config.strategy} keeps one hypothesis per row, got {width}")
    step = logprobs[:, 0, :]  # [N, V]
    if config.strategy == "greedy":
        best, tokens = step.max(dim=-1)  # [N]
    else:
        scaled = step / config.temperature
        if config.strategy == "topk":
            k = min(config.top_k, vocab)
            kept, kept_ids = scaled.topk(k, dim=-1)  # [N, k]
            choice = _sample(torch.softmax(kept, dim=-1), generator)  # [N]
            tokens = kept_ids.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
        else:  # topp
            probs = torch.softmax(scaled, dim=-1)
            sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)  # [N, V]
            mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
            sorted_probs = sorted_probs.masked_fill(mass_before >= config.top_p, 0.0)
            sorted_probs = sorted_probs / sorted_probs.sum(dim=-1, keepdim=True)
            choice = _sample(sorted_probs, generator)  # [N]
            tokens = sorted_ids.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
        best = step.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    hyp_ids = torch.zeros(rows, 1, dtype=torch.long, device=logprobs.device)
    return hyp_ids, tokens.view(rows, 1), (prior_scores[:, 0] + best).view(rows, 1)


# --------------------------------------------------------------------------------------------
# The shared loop
# --------------------------------------------------------------------------------------------


def banned_tokens(tokens: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in ``tokens`` (n-gram blocking).

    Example: ``banned_tokens([5, 6, 7, 5], 2) == {6}`` ((5, 6) occurred; the prefix ends in 5).
    """
    if n < 1 or len(tokens) < n - 1:
        return set()
    if n == 1:
        return set(tokens)
    tail = tuple(tokens[len(tokens) - n + 1 :])
    return {
        tokens[i + n - 1]
        for i in range(len(tokens) - n + 1)
        if tuple(tokens[i : i + n - 1]) == tail
    }


def _length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


def _batch_size(batch: Any, state: Any) -> int:
    """Rows in ``batch``: ``state.batch_size``, ``len(batch)``, or a tensor field's first dim."""
    for source in (state, batch):
        size = getattr(source, "batch_size", None)
        if isinstance(size, int):
            return size
    try:
        return len(batch)
    except TypeError:
        pass
    values = (
        [getattr(batch, f.name) for f in dataclasses.fields(batch)]
        if dataclasses.is_dataclass(batch)
        else list(vars(batch).values())
    )
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ValueError(f"cannot tell the batch size of a {type(batch).__name__}")


@torch.no_grad()
def generate(model: GeneratorModel, batch: Any, config: DecodeConfig) -> list[list[int]]:
    """Decode one response per example of ``batch``.

    Encodes once, then repeats ``decode_step`` + :func:`select_paths` up to ``config.max_len``
    times. A hypothesis ends when it selects EOS; a row ends when it has ``width`` finished
    hypotheses and its best live one has just ended (beam, as ParlAI), or its one hypothesis
    ended (greedy / sampling); ended rows are dropped from the state so later steps cost less.
    At ``max_len`` unfinished hypotheses count as finished. The best finished hypothesis by
    length-penalised score is returned.

    Returns:
        token ids per example, in batch order, without SOS and EOS (at most ``max_len``).
    """
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        return _search(model, batch, config)
    finally:
        if was_training:
            model.train()


def _search(model: GeneratorModel, batch: Any, config: DecodeConfig) -> list[list[int]]:
    state = model.encode(batch)
    batch_size = _batch_size(batch, state)
    width = config.width
    device = _device_of(model)
    generator = None
    if config.strategy in ("topk", "topp"):
        generator = torch.Generator(device="cpu")
        generator.manual_seed(config.seed)

    # live rows: `rows[i]` is the batch index of live row i; hypotheses are laid out row-major
    rows = list(range(batch_size))
    if width > 1:
        state = state.index_select(torch.arange(batch_size, device=device).repeat_interleave(width))
    prefix = torch.full((batch_size * width, 1), SOS_ID, dtype=torch.long, device=device)
    scores = torch.zeros(batch_size, width, device=device)
    if width > 1:  # all beams start identical: expand only the first, or the beam holds copies
        scores[:, 1:] = -math.inf
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]
    eos_top = [False] * batch_size

    for step in range(config.max_len):
        logprobs = model.decode_step(state, prefix).float()  # [R*K, V]
        vocab = logprobs.shape[-1]
        if step < config.min_len:
            logprobs[:, EOS_ID] = -math.inf
        logprobs[:, NEVER_GENERATED] = -math.inf  # structure tokens are never words of a reply
        if config.block_unk:
            logprobs[:, UNK_ID] = -math.inf
        if config.no_repeat_ngram:
            generated = prefix[:, 1:].tolist()
            for hyp, tokens in enumerate(generated):
                banned = banned_tokens(tokens, config.no_repeat_ngram)
                if banned:
                    logprobs[hyp, list(banned)] = -math.inf
        # a hypothesis with every token blocked may only end (never sample from all -inf)
        stuck = ~torch.isfinite(logprobs).any(dim=-1)
        if bool(stuck.any()):
            logprobs[stuck, EOS_ID] = 0.0
        live = len(rows)
        hyp_ids, token_ids, scores = select_paths(
            config, logprobs.view(live, width, vocab), scores, generator
        )
        # reorder the hypotheses: new hypothesis (r, k) extends old (r, hyp_ids[r, k])
        source = (torch.arange(live, device=device).unsqueeze(-1) * width + hyp_ids).view(-1)
        prefix = torch.cat([prefix.index_select(0, source), token_ids.view(-1, 1)], dim=1)
        if width > 1:
            state = state.index_select(source)

        # collect hypotheses that ended (EOS, or the length limit) and drop them from the beam
        last = step == config.max_len - 1
        ended = (token_ids == EOS_ID) & torch.isfinite(scores)  # [R, K]
        ended_list, token_list, score_list = ended.tolist(), token_ids.tolist(), scores.tolist()
        tokens_so_far = prefix[:, 1:].tolist()
        done_rows: list[int] = []
        for r, batch_index in enumerate(rows):
            if token_list[r][0] == EOS_ID and ended_list[r][0]:
                eos_top[batch_index] = True
            for k in range(width):
                score = score_list[r][k]
                if not math.isfinite(score):
                    continue
                if ended_list[r][k]:
                    body = tokens_so_far[r * width + k][:-1]
                elif last:
                    body = tokens_so_far[r * width + k]
                else:
                    continue
                finished[batch_index].append(
                    (score / _length_penalty(len(body), config.length_penalty), body)
                )
            if last or (eos_top[batch_index] and len(finished[batch_index]) >= width):
                done_rows.append(r)
        scores = scores.masked_fill(ended, -math.inf)
        if len(done_rows) == live:
            break
        if done_rows:
            done_set = set(done_rows)
            keep_rows = [r for r in range(live) if r not in done_set]
            keep = torch.tensor(keep_rows, dtype=torch.long, device=device)
            hyp_keep = (keep.unsqueeze(-1) * width + torch.arange(width, device=device)).view(-1)
            state = state.index_select(hyp_keep)
            prefix = prefix.index_select(0, hyp_keep)
            scores = scores.index_select(0, keep)
            rows = [rows[r] for r in keep_rows]

    out: list[list[int]] = []
    for hypotheses in finished:
        if not hypotheses:  # cannot happen (max_len forces an end), kept for safety
            out.append([])
            continue
        best = max(range(len(hypotheses)), key=lambda i: (hypotheses[i][0], -i))
        out.append(hypotheses[best][1])
    return out


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")
