"""LSTM caption decoders over CNN image features: Show and Tell, and Show, Attend and Tell.

Features come from a torchvision backbone (``vision2seq.models.encoder``), either pooled ``(B, D)`` or as
a spatial grid ``(B, N, D)`` of ``N = H * W`` positions. Both decoders share one interface, so
``vision2seq.models.generation`` can decode with either:

- ``forward(features, captions)``: teacher forcing, for training;
- ``init_state(features)`` and ``step(tokens, state)``: one token at a time, for generation;
- ``expand_state(state, k)`` and ``reorder_state(state, index)``: copy and reorder hypotheses (beam search).

Captions are ``(B, L)`` token ids that start with ``<bos>`` and are right-padded with the pad id (0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vision2seq.models.generation import Generation, generate
from vision2seq.models.normalization import FeatureNorm

if TYPE_CHECKING:
    from vision2seq.config import GenerationConfig
    from vision2seq.models.encoder import ImageEncoder

PAD_ID = 0


@dataclass
class DecoderOutput:
    """What teacher-forced decoding returns.

    Attributes:
        logits: Next-token scores ``(B, L-1, V)``; position ``t`` predicts ``captions[:, t + 1]``.
        alphas: Attention weights over the ``N`` grid positions ``(B, L-1, N)``; None without attention.
    """

    logits: Tensor
    alphas: Tensor | None


@dataclass
class DecoderState:
    """Recurrent state of a decoder for a batch of hypotheses.

    Rows of ``h`` and ``c`` are hypotheses, while ``memory`` holds one row per image: when every image has
    ``G`` hypotheses (the beams of beam search) they are the consecutive rows ``b * G .. b * G + G - 1``.
    Storing the image grid once, instead of once per beam, saves copying ``(B * G, N, D)`` at every
    reordering step and lets attention read each image's grid once for all its beams.

    Attributes:
        h: Hidden state of every layer, ``(B * G, num_layers, H)``.
        c: Cell state, same shape as ``h``.
        memory: Image grid the attention reads, ``(B, N, D)``; None for decoders without attention.
        memory_proj: ``memory`` already projected into the attention space, ``(B, N, A)``.
        weights: The decoder's step weights regrouped once per sequence (``AttentionDecoder``'s
            ``StepWeights``); None for decoders without them.
    """

    h: Tensor
    c: Tensor
    memory: Tensor | None = None
    memory_proj: Tensor | None = None
    weights: Any = None


def as_grid(features: Tensor) -> Tensor:
    """Features as a grid ``(B, N, D)``; pooled ``(B, D)`` features become a grid of one position."""
    if features.dim() == 2:
        return features.unsqueeze(1)
    if features.dim() == 3:
        return features
    raise ValueError(f"features must be pooled (B, D) or a grid (B, N, D), got shape {tuple(features.shape)}")


def as_pooled(features: Tensor) -> Tensor:
    """Features pooled to ``(B, D)``; a grid ``(B, N, D)`` is averaged over its positions."""
    return as_grid(features).mean(dim=1)


def grid_shape(positions: int) -> tuple[int, int]:
    """Rows and columns of a flattened grid of ``positions``: square when it is one (the grids of square
    encoder inputs), else one row (a sequence)."""
    side = math.isqrt(positions)
    return (side, side) if side * side == positions else (1, positions)


def sinusoidal_grid(rows: int, cols: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Fixed 2-D sine-cosine codes of a ``rows x cols`` grid, ``(rows * cols, dim)`` in row-major order
    (the order ``flatten`` gives a feature map): half the channels code the row, half the column, each at
    ``dim // 4`` frequencies over the grid's extent, so neighbouring cells get similar codes."""
    quarter = dim // 4
    freqs = torch.pi * 2.0 ** torch.arange(quarter, device=device, dtype=torch.float32) / 2.0  # (F,)

    def code(count: int) -> Tensor:
        where = (torch.arange(count, device=device, dtype=torch.float32) + 0.5) / count  # (count,) in (0, 1)
        angles = where[:, None] * freqs[None, :]  # (count, F)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (count, 2F)

    row, col = code(rows), code(cols)
    return torch.cat(
        [row[:, None].expand(rows, cols, -1), col[None, :].expand(rows, cols, -1)], dim=-1
    ).reshape(rows * cols, -1)  # (N, 4F)


class GridPositions(nn.Module):
    """Adds where each grid cell lies to its features: a learned projection of fixed 2-D codes.

    Soft attention's context vector is a weighted *sum* over the cells, so without this it says what the
    attended region holds but not where it is; a caption stating "a red circle above a blue square" then
    has only the CNN's weak padding cues to go on. With the cell's position added to its features, the
    context vector carries the attended object's position and the LSTM can compare two of them. The codes
    are fixed (any grid size, so cached features and checkpoints stay independent of it); the projection
    into the feature space is learned.
    """

    def __init__(self, feature_dim: int, code_dim: int = 32) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.proj = nn.Linear(code_dim, feature_dim)

    def forward(self, memory: Tensor) -> Tensor:
        """``memory`` ``(B, N, D)`` plus the projected code of each of its ``N`` cells."""
        rows, cols = grid_shape(memory.size(1))
        codes = sinusoidal_grid(rows, cols, self.code_dim, memory.device).to(memory.dtype)  # (N, P)
        return memory + self.proj(codes)  # (B, N, D)


def _check_captions(captions: Tensor) -> None:
    if captions.dim() != 2 or captions.size(1) < 2:
        raise ValueError(
            f"captions must be (B, L) with L >= 2 (<bos> and at least one token), got {tuple(captions.shape)}"
        )


class CaptionDecoder(nn.Module):
    """Interface shared by the decoders; subclasses implement ``forward``, ``init_state`` and ``step``."""

    vocab_size: int

    def init_state(self, features: Tensor) -> DecoderState:
        """State before the first token (``<bos>``) is fed, one hypothesis per image."""
        raise NotImplementedError

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor | None]:
        """Feed one token per hypothesis.

        Args:
            tokens: The previous token of every hypothesis, ``(B * G,)``.
            state: State of those hypotheses.

        Returns:
            Log-probabilities of the next token ``(B * G, V)``, the new state, and the attention weights
            used for this prediction ``(B * G, N)`` (None without attention).
        """
        raise NotImplementedError

    def expand_state(self, state: DecoderState, k: int) -> DecoderState:
        """Give each hypothesis ``k`` consecutive copies (row ``i`` becomes rows ``i*k`` to ``i*k + k-1``)."""
        return replace(state, h=state.h.repeat_interleave(k, dim=0), c=state.c.repeat_interleave(k, dim=0))

    def reorder_state(self, state: DecoderState, index: Tensor) -> DecoderState:
        """Hypothesis ``i`` of the new state is hypothesis ``index[i]`` of ``state``.

        ``index`` ``(B * G,)`` must keep every hypothesis within its image's group of ``G`` rows (as beam
        search does), because the per-image ``memory`` is shared by the group rather than reordered.
        """
        return replace(state, h=state.h.index_select(0, index), c=state.c.index_select(0, index))


CONDITIONING = ("init", "pre", "merge", "par")
"""How Show and Tell gives the image to its LSTM (see ``ShowTellDecoder``)."""


class ShowTellDecoder(CaptionDecoder):
    """Show and Tell (Vinyals et al., 2015): an LSTM language model conditioned on the pooled image.

    ``conditioning`` says where the image enters (Tanti et al., 2018 compare these):

    - ``init`` (init-inject): linear maps of the image give the LSTM's initial ``h``/``c``; the LSTM then
      reads ``<bos>`` and the words. The image acts on every gate from the first step.
    - ``pre`` (pre-inject, the paper's): the image, projected to the word-embedding size, is the LSTM's
      first input, before ``<bos>``; the output at that step is discarded.
    - ``merge``: the LSTM reads only words; its output is concatenated with the projected image before the
      output layer, so every word prediction sees the image directly. The two meet in one linear layer,
      so the image's vote for a word cannot depend on what was already said: which shape goes with the
      colour just named (two objects) is out of its reach.
    - ``par`` (par-inject): the projected image is an LSTM input at every step, beside the word, so the
      gates combine what the image holds with what the caption has said so far.

    A grid is mean-pooled first.

    Args:
        feature_dim: Size ``D`` of the image features.
        vocab_size: Number of tokens ``V``, including the special ones.
        embed_dim: Size of the word embeddings and of the projected image.
        hidden_dim: LSTM hidden size.
        num_layers: Stacked LSTM layers.
        dropout: Dropout on the LSTM inputs, between layers and before the output layer.
        pad_id: Token id used for padding (its embedding stays zero).
        conditioning: ``init``, ``pre``, ``merge`` or ``par``.
    """

    def __init__(
        self,
        feature_dim: int,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        num_layers: int = 1,
        dropout: float = 0.3,
        pad_id: int = PAD_ID,
        conditioning: str = "merge",
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONING:
            raise ValueError(f"conditioning must be one of {CONDITIONING}, got {conditioning!r}")
        self.vocab_size, self.conditioning = vocab_size, conditioning
        self.num_layers, self.hidden_dim = num_layers, hidden_dim
        if conditioning == "init":
            self.init_h = nn.Linear(feature_dim, num_layers * hidden_dim)
            self.init_c = nn.Linear(feature_dim, num_layers * hidden_dim)
        else:
            self.image_proj = nn.Linear(feature_dim, embed_dim)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        inputs = 2 * embed_dim if conditioning == "par" else embed_dim
        self.lstm = nn.LSTM(
            inputs, hidden_dim, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim + (embed_dim if conditioning == "merge" else 0), vocab_size)

    def _initial(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Init-inject: ``(num_layers, B, H)`` initial ``h`` and ``c`` from the pooled image ``(B, D)``."""
        shape = (image.size(0), self.num_layers, self.hidden_dim)
        h = self.init_h(image).view(shape).transpose(0, 1).contiguous()
        c = self.init_c(image).view(shape).transpose(0, 1).contiguous()
        return h, c

    def _output(self, out: Tensor, image: Tensor | None) -> Tensor:
        """Logits from LSTM outputs ``(..., H)``; merge appends the projected image ``(..., E)`` first."""
        if image is not None:
            out = torch.cat([out, image.expand(*out.shape[:-1], image.shape[-1])], dim=-1)
        return self.fc(self.dropout(out))

    def forward(self, features: Tensor, captions: Tensor) -> DecoderOutput:
        """Teacher-forced decoding of ``captions`` ``(B, L)``; see ``DecoderOutput``."""
        _check_captions(captions)
        pooled = as_pooled(features)  # (B, D)
        words = self.embed(captions[:, :-1])  # (B, L-1, E)
        if self.conditioning == "pre":
            image = self.image_proj(pooled).unsqueeze(1)  # (B, 1, E)
            out, _ = self.lstm(self.dropout(torch.cat([image, words], dim=1)))  # (B, L, H)
            # The output after the image has no word to predict; the one after <bos> predicts captions[:, 1].
            return DecoderOutput(logits=self._output(out[:, 1:], None), alphas=None)  # (B, L-1, V)
        hx = self._initial(pooled) if self.conditioning == "init" else None
        if self.conditioning == "par":
            image = self.image_proj(pooled).unsqueeze(1).expand(-1, words.size(1), -1)  # (B, L-1, E)
            out, _ = self.lstm(self.dropout(torch.cat([words, image], dim=-1)))  # (B, L-1, H)
            return DecoderOutput(logits=self._output(out, None), alphas=None)
        out, _ = self.lstm(self.dropout(words), hx)  # (B, L-1, H)
        merged = self.image_proj(pooled).unsqueeze(1) if self.conditioning == "merge" else None  # (B, 1, E)
        return DecoderOutput(logits=self._output(out, merged), alphas=None)

    def init_state(self, features: Tensor) -> DecoderState:
        pooled = as_pooled(features)  # (B, D)
        if self.conditioning == "pre":
            image = self.dropout(self.image_proj(pooled)).unsqueeze(1)  # (B, 1, E)
            _, (h, c) = self.lstm(image)  # (num_layers, B, H) each
            return DecoderState(h=h.transpose(0, 1), c=c.transpose(0, 1))
        if self.conditioning == "init":
            h, c = self._initial(pooled)
            return DecoderState(h=h.transpose(0, 1), c=c.transpose(0, 1))
        zeros = pooled.new_zeros(pooled.size(0), self.num_layers, self.hidden_dim)
        # Merge and par keep the projected image as per-image memory (shared by an image's hypotheses).
        return DecoderState(h=zeros, c=zeros.clone(), memory=self.image_proj(pooled).unsqueeze(1))

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor | None]:
        words = self.embed(tokens)  # (B*G, E)
        image = None
        if state.memory is not None:  # merge, par: (B, 1, E) -> one row per hypothesis (B*G, E)
            image = state.memory[:, 0].repeat_interleave(tokens.size(0) // state.memory.size(0), dim=0)
        if self.conditioning == "par":
            words, image = torch.cat([words, image], dim=-1), None
        x = self.dropout(words).unsqueeze(1)  # (B*G, 1, E) or (B*G, 1, 2E)
        # The state keeps the batch first so every decoder reorders it the same way; nn.LSTM wants it second.
        hx = (state.h.transpose(0, 1).contiguous(), state.c.transpose(0, 1).contiguous())
        out, (h, c) = self.lstm(x, hx)  # out: (B*G, 1, H)
        log_probs = F.log_softmax(self._output(out[:, 0], image), dim=-1)  # (B*G, V)
        return log_probs, replace(state, h=h.transpose(0, 1), c=c.transpose(0, 1)), None


def attention_regularization(alphas: Tensor, mask: Tensor | None = None) -> Tensor:
    """Doubly stochastic attention penalty of Show, Attend and Tell (Xu et al., 2015, eq. 14).

    Encourages every grid position to receive a total attention of about one over the caption:
    ``sum_i (1 - sum_t alpha[t, i]) ** 2`` per caption, divided by its number of words, averaged over the
    batch. The paper adds ``lambda`` times that sum to the caption's negative log-likelihood summed over
    its words; training here averages the cross-entropy over words, so the penalty is averaged over them
    too, which keeps ``alpha_c`` the paper's ``lambda``. (Undivided, it weighed about ten times the
    paper's on ten-word captions; on generated scenes with a 3x3 grid and ``alpha_c: 1`` that held the
    attention config to val CIDEr-D 3.2 after 8 epochs, against 4.1+ without the penalty.)

    Args:
        alphas: Attention weights ``(B, T, N)``, as in ``DecoderOutput.alphas``.
        mask: True at real (non-pad) time steps ``(B, T)``, e.g. ``captions[:, 1:] != pad_id``;
            None counts every step.

    Returns:
        A scalar tensor; training adds ``alpha_c`` times it to the loss.
    """
    if mask is None:
        words = torch.full(alphas.shape[:1], alphas.shape[1], dtype=alphas.dtype, device=alphas.device)
    else:
        alphas = alphas * mask.unsqueeze(-1).to(alphas.dtype)
        words = mask.sum(dim=1).clamp_min(1).to(alphas.dtype)  # (B,)
    total = alphas.sum(dim=1)  # (B, N)
    return (((1.0 - total) ** 2).sum(dim=1) / words).mean()


class StepWeights(NamedTuple):
    """``AttentionDecoder``'s per-step weights regrouped by what they multiply, built once per sequence.

    The parameters stay the modules' own (``decoder_att``, ``f_beta``, ``cells[0]``), so state-dict keys
    and checkpoints are unchanged; these are views and concatenations through which gradients flow.

    Attributes:
        word: The first cell's input weights for the word embedding ``(4H, E)``: the word half of its
            gates does not depend on the previous step, so teacher forcing applies it to every time step
            in one matrix product before the loop.
        word_bias: The first cell's two biases, summed, when they are not in ``query_bias``; else None.
        context: The first cell's input weights for the gated context ``(4H, D)``.
        query: ``decoder_att``, ``f_beta`` and (one layer) the first cell's hidden weights stacked
            ``(A + D [+ 4H], H)``: all read the previous hidden state, so one matrix product serves them.
        query_bias: Their biases, stacked the same way.
    """

    word: Tensor
    word_bias: Tensor | None
    context: Tensor
    query: Tensor
    query_bias: Tensor


class _StepProduct(torch.autograd.Function):
    """``x @ weight.t()`` at one time step of teacher forcing, with the weight's gradient deferred.

    Plain autograd forms ``grad_y.t() @ x`` at every step: for 32-row steps, a thin product written over
    the whole weight and then added into the running sum (memory traffic, not arithmetic; the
    per-time-step ``add_`` of the profile). Here each step's backward records ``(grad_y, x)`` and the first
    step's backward returns the gradient of all steps as one product. Autograd runs the first step's
    backward last: its output feeds every later step, so its gradient needs all of theirs first.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, record: list, first: bool) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.record, ctx.first = record, first
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            ctx.record.append((grad, x))
            if ctx.first:
                grads, inputs = zip(*ctx.record, strict=True)
                ctx.record.clear()
                grad_weight = torch.cat(grads).t() @ torch.cat(inputs)  # (out, in): every step at once
        return grad_x, grad_weight, None, None


class _StepRead(torch.autograd.Function):
    """``torch.bmm(alpha, memory)`` at one time step, with the memory's gradient deferred the same way
    (``_StepProduct``): a per-step ``(B, N, D)`` gradient would otherwise be written and summed at every
    step whenever the memory is trained (the grid positions' projection, or a trained encoder)."""

    @staticmethod
    def forward(ctx, alpha: Tensor, memory: Tensor, record: list, first: bool) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(alpha, memory)
        ctx.record, ctx.first = record, first
        return torch.bmm(alpha, memory)  # (B, G, D)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        alpha, memory = ctx.saved_tensors
        grad_alpha = torch.bmm(grad, memory.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_memory = None
        if ctx.needs_input_grad[1]:
            ctx.record.append((alpha, grad))
            if ctx.first:
                alphas, grads = zip(*ctx.record, strict=True)
                ctx.record.clear()
                # (B, N, T*G) @ (B, T*G, D): every step at once
                grad_memory = torch.bmm(torch.cat(alphas, dim=1).transpose(1, 2), torch.cat(grads, dim=1))
        return grad_alpha, grad_memory, None, None


class _Sequence:
    """The recurrent products of one teacher-forced sequence whose weight (or memory) gradients are
    deferred to one product after the last step's backward (``_StepProduct``, ``_StepRead``)."""

    def __init__(self) -> None:
        self.records: dict[str, list] = {"query": [], "context": [], "read": []}
        self.started: set[str] = set()

    def _first(self, name: str) -> bool:
        first = name not in self.started
        self.started.add(name)
        return first

    def _product(self, name: str, x: Tensor, weight: Tensor) -> Tensor:
        return _StepProduct.apply(x, weight, self.records[name], self._first(name))

    def read(self, alpha: Tensor, memory: Tensor) -> Tensor:
        """``torch.bmm(alpha, memory)`` (attention's context) with the memory's gradient deferred."""
        return _StepRead.apply(alpha, memory, self.records["read"], self._first("read"))

    def query(self, h: Tensor, weight: Tensor) -> Tensor:
        return self._product("query", h, weight)

    def context(self, gated: Tensor, weight: Tensor) -> Tensor:
        return self._product("context", gated, weight)


class AttentionDecoder(CaptionDecoder):
    """Show, Attend and Tell (Xu et al., 2015) with soft, additive attention over the grid positions.

    ``h0``/``c0`` come from the mean grid feature through linear layers. At every step the previous hidden
    state (of the top layer) scores each grid position, the softmax over positions weights the grid into a
    context vector, a gate ``beta = sigmoid(f_beta(h))`` scales it, and the LSTM input is
    ``[word embedding; beta * context]``. Several layers are stacked ``nn.LSTMCell``s; only the first
    reads the word and the context. Pooled ``(B, D)`` features are a grid of one position. With
    ``positions`` the grid's cells carry where they are (``GridPositions``), so captions can say where
    things are relative to each other.

    Args:
        feature_dim: Size ``D`` of the image features.
        vocab_size: Number of tokens ``V``, including the special ones.
        embed_dim: Size of the word embeddings.
        hidden_dim: LSTM hidden size.
        attention_dim: Size of the additive-attention space.
        num_layers: Stacked LSTM cells.
        dropout: Dropout between layers and before the output layer.
        pad_id: Token id used for padding (its embedding stays zero).
        positions: Add each grid cell's position to its features (``GridPositions``).
    """

    def __init__(
        self,
        feature_dim: int,
        vocab_size: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        attention_dim: int = 256,
        num_layers: int = 1,
        dropout: float = 0.3,
        pad_id: int = PAD_ID,
        positions: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.vocab_size = vocab_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.attention_dim = attention_dim
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.positions = GridPositions(feature_dim) if positions else None
        self.init_h = nn.Linear(feature_dim, num_layers * hidden_dim)
        self.init_c = nn.Linear(feature_dim, num_layers * hidden_dim)
        self.encoder_att = nn.Linear(feature_dim, attention_dim)
        self.decoder_att = nn.Linear(hidden_dim, attention_dim)
        self.full_att = nn.Linear(attention_dim, 1)
        self.f_beta = nn.Linear(hidden_dim, feature_dim)
        self.cells = nn.ModuleList(
            nn.LSTMCell(embed_dim + feature_dim if i == 0 else hidden_dim, hidden_dim)
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    attention_regularization = staticmethod(attention_regularization)

    def init_state(self, features: Tensor) -> DecoderState:
        memory = as_grid(features)  # (B, N, D)
        mean = memory.mean(dim=1)  # (B, D)
        if self.positions is not None:
            memory = self.positions(memory)
        shape = (memory.size(0), self.num_layers, self.hidden_dim)
        return DecoderState(
            h=self.init_h(mean).view(shape),
            c=self.init_c(mean).view(shape),
            memory=memory,
            # The grid's half of the attention score is the same at every step: project it once.
            memory_proj=self.encoder_att(memory),  # (B, N, A)
            weights=self.step_weights(),
        )

    def step_weights(self) -> StepWeights:
        """The step's weights regrouped for fewer, larger matrix products (see ``StepWeights``)."""
        first = self.cells[0]
        embed_dim = self.embed.embedding_dim
        word, context = first.weight_ih.split([embed_dim, first.input_size - embed_dim], dim=1)
        cell_bias = first.bias_ih + first.bias_hh  # (4H,)
        query = [self.decoder_att.weight, self.f_beta.weight]
        query_bias = [self.decoder_att.bias, self.f_beta.bias]
        if self.num_layers == 1:  # the attention query is the first (only) cell's hidden state
            query.append(first.weight_hh)
            query_bias.append(cell_bias)
        return StepWeights(
            word=word,
            word_bias=None if self.num_layers == 1 else cell_bias,
            context=context,
            query=torch.cat(query),
            query_bias=torch.cat(query_bias),
        )

    def attend(self, query: Tensor, memory: Tensor, memory_proj: Tensor) -> tuple[Tensor, Tensor]:
        """Additive attention of ``B * G`` queries ``(B * G, H)`` over their image's grid ``(B, N, D)``.

        Returns:
            The context vectors ``(B * G, D)`` and the attention weights ``(B * G, N)``.
        """
        return self.attend_projected(self.decoder_att(query), memory, memory_proj)

    def attend_projected(
        self, q: Tensor, memory: Tensor, memory_proj: Tensor, sequence: _Sequence | None = None
    ) -> tuple[Tensor, Tensor]:
        """``attend`` with the queries already projected into the attention space ``(B * G, A)``."""
        batch, positions, feature_dim = memory.shape
        q = q.reshape(batch, -1, 1, self.attention_dim)  # (B, G, 1, A)
        energy = self.full_att(torch.tanh(memory_proj.unsqueeze(1) + q)).squeeze(-1)  # (B, G, N)
        alpha = F.softmax(energy, dim=-1)  # (B, G, N)
        context = torch.bmm(alpha, memory) if sequence is None else sequence.read(alpha, memory)  # (B, G, D)
        return context.view(-1, feature_dim), alpha.view(-1, positions)

    def word_gates(self, words: Tensor, weights: StepWeights) -> Tensor:
        """The word half of the first cell's gates for embedded words ``(..., E)`` -> ``(..., 4H)``."""
        return F.linear(words, weights.word, weights.word_bias)

    def recurrent_step(self, word_gates: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """Attention + LSTM given the word half of the first cell's gates ``(B * G, 4H)`` (``word_gates``);
        returns the output layer's input ``(B * G, H)`` (after dropout), the new state and the attention
        weights.

        The same arithmetic as ``nn.LSTMCell`` on ``[word; beta * context]``, regrouped: one product of
        the previous hidden state with ``decoder_att``, ``f_beta`` and the cell's hidden weights, one of
        the gated context with the cell's context weights (the word's part comes precomputed).
        """
        return self._recurrent_step(word_gates, state, None)

    def _recurrent_step(
        self, word_gates: Tensor, state: DecoderState, sequence: _Sequence | None
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """``recurrent_step``; with ``sequence`` (teacher forcing) the two large products defer their
        weight gradients to one product over all steps (``_StepProduct``)."""
        assert state.memory is not None and state.memory_proj is not None
        w: StepWeights = state.weights if state.weights is not None else self.step_weights()
        att, dim = self.attention_dim, state.memory.size(-1)
        if sequence is None:
            query = F.linear(state.h[:, -1], w.query, w.query_bias)  # (B*G, A + D [+ 4H]) from the top layer
        else:
            query = sequence.query(state.h[:, -1], w.query) + w.query_bias
        context, alpha = self.attend_projected(
            query[:, :att], state.memory, state.memory_proj, sequence
        )  # (B*G, D), (B*G, N)
        gated = torch.sigmoid(query[:, att : att + dim]) * context  # (B*G, D)
        if sequence is None:
            gates = torch.addmm(word_gates, gated, w.context.t())  # (B*G, 4H)
        else:
            gates = word_gates + sequence.context(gated, w.context)
        h0, c0 = state.h[:, 0], state.c[:, 0]
        gates = (
            gates + query[:, att + dim :]
            if self.num_layers == 1
            else torch.addmm(gates, h0, self.cells[0].weight_hh.t())
        )
        in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=1)  # nn.LSTMCell's order
        c = torch.sigmoid(forget_gate) * c0 + torch.sigmoid(in_gate) * torch.tanh(cell_gate)  # (B*G, H)
        h = torch.sigmoid(out_gate) * torch.tanh(c)
        hs, cs = [h], [c]
        x = self.dropout(h)  # input of the next layer, or of the output layer after the last one
        for layer in range(1, self.num_layers):
            h, c = self.cells[layer](x, (state.h[:, layer], state.c[:, layer]))  # (B*G, H) each
            hs.append(h)
            cs.append(c)
            x = self.dropout(h)
        return x, replace(state, h=torch.stack(hs, dim=1), c=torch.stack(cs, dim=1)), alpha

    def decode_step(self, words: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """One step from embedded words ``(B * G, E)``; returns logits ``(B * G, V)``, state, alpha."""
        w = state.weights if state.weights is not None else self.step_weights()
        x, state, alpha = self.recurrent_step(self.word_gates(words, w), state)
        return self.fc(x), state, alpha

    def forward(self, features: Tensor, captions: Tensor) -> DecoderOutput:
        """Teacher-forced decoding of ``captions`` ``(B, L)``; see ``DecoderOutput``."""
        _check_captions(captions)
        state = self.init_state(features)
        words = self.embed(captions[:, :-1])  # (B, L-1, E)
        # The words are known in advance: their half of the first cell's gates is one product for all steps.
        word_gates = self.word_gates(words, state.weights)  # (B, L-1, 4H)
        sequence = _Sequence() if torch.is_grad_enabled() else None
        outputs, alphas = [], []
        for t in range(words.size(1)):
            x, state, alpha = self._recurrent_step(word_gates[:, t], state, sequence)
            outputs.append(x)
            alphas.append(alpha)
        # One large output projection instead of one per step (the biggest matrix of the decoder).
        logits = self.fc(torch.stack(outputs, dim=1))  # (B, L-1, V)
        return DecoderOutput(logits=logits, alphas=torch.stack(alphas, dim=1))

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor | None]:
        logits, state, alpha = self.decode_step(self.embed(tokens), state)
        return F.log_softmax(logits, dim=-1), state, alpha


DECODERS: dict[str, type[CaptionDecoder]] = {"show_tell": ShowTellDecoder, "attention": AttentionDecoder}


def build_decoder(kind: str, feature_dim: int, vocab_size: int, **kwargs) -> CaptionDecoder:
    """A decoder by name: ``"show_tell"`` or ``"attention"``; ``kwargs`` go to its constructor."""
    if kind not in DECODERS:
        raise ValueError(f"unknown decoder kind {kind!r}; expected one of {sorted(DECODERS)}")
    return DECODERS[kind](feature_dim, vocab_size, **kwargs)


class CaptionModel(nn.Module):
    """An image encoder and a caption decoder: ``forward`` trains (teacher forcing), ``generate`` decodes.

    Args:
        encoder: The CNN; its output (pooled or grid), normalised by ``norm``, is what the decoder reads.
        decoder: A ``CaptionDecoder``.
        bos_id: Token id that starts every caption (``<bos>``).
        eos_id: Token id that ends one (``<eos>``).
        norm: Feature standardisation with the training set's statistics; None: features go in raw.
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        decoder: CaptionDecoder,
        bos_id: int,
        eos_id: int,
        norm: FeatureNorm | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.norm = norm if norm is not None else FeatureNorm(encoder.feature_dim, enabled=False)
        self.bos_id, self.eos_id = bos_id, eos_id

    def raw_features(self, batch: Mapping[str, Any]) -> Tensor:
        """Cached ``features`` when the batch carries them, else the encoder run on its ``images``."""
        if "features" in batch:
            return batch["features"]  # (B, D) or (B, N, D)
        return self.encoder(batch["images"])

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        """What the decoder reads: ``raw_features`` normalised with the training set's statistics."""
        return self.norm(self.raw_features(batch))

    def memory(self, features: Tensor) -> Tensor:
        """What the decoder reads of ``features()``: the image features themselves (a video captioner
        encodes its frame features over time first)."""
        return features

    def forward(self, batch: Mapping[str, Any]) -> DecoderOutput:
        """Teacher forcing on the batch's ``captions`` ``(B, L)`` (the whole batch goes through forward so
        DistributedDataParallel sees every trained parameter, the encoder's included). A batch of whole
        images with several captions each maps captions to images by ``caption_image``."""
        features = self.features(batch)
        if "caption_image" in batch:
            features = features.index_select(0, batch["caption_image"])
        return self.decoder(features, batch["captions"])

    def generate(
        self, features: Tensor, settings: GenerationConfig, return_attention: bool = False
    ) -> Generation:
        """Captions of ``features`` (from ``features()``), decoded as ``settings`` says."""
        return generate(self.decoder, features, self.bos_id, self.eos_id, settings, return_attention)
