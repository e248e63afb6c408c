"""Parallel streams with verified burn-in: the text as B contiguous segments in one batch.

At batch 1 every token reads each layer's recurrent weights whole, and for a wide layer that
read, not the arithmetic, sets the pace. Run as B streams, each step's matrix-vector products
become one matrix product that reads the weights once for B tokens. A stream that starts inside
the text does not know the state there, so it starts K tokens early from a zero state, and its
states are kept only once they are checked against the stream before it (`run_streams`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from reportgen.capture.recurrence import LayerState, Recurrence
from reportgen.progress import Progress

BOUNDARY_TOLERANCE = 1e-4  # largest |h or c| difference in any unit at a verified boundary
BURN_IN = 128  # tokens each stream first runs before its segment, from a zero state
MAX_BURN_IN = 4096  # a boundary that still fails at this burn-in falls back to one stream
WIDE_LAYER = 1024  # units from which a layer's recurrent weights (16 MB) outgrow the caches
STREAMS_NARROW, STREAMS_WIDE = 32, 64  # streams below and from WIDE_LAYER: see choose_streams
SEGMENT_BURN_INS = 8  # a segment is at least this many burn-ins long: burn-in costs <= 1/8


@dataclass
class StreamRecord:
    """How the capture split the text into parallel streams, and how close their boundaries
    came to the one-stream states; for the overview page and `report.json`."""

    streams: int = 1  # B, contiguous segments run as one batch
    burn_in: int = 0  # K, tokens each stream but the first ran before its segment at first
    largest_burn_in: int = 0  # the longest tried, after doubling where boundaries failed
    boundary_difference: float = 0.0  # largest |h or c| difference at any accepted boundary
    doubled: int = 0  # boundaries whose burn-in was doubled at least once
    fallbacks: int = 0  # segments run as one stream on from the previous segment's end


def choose_streams(widths: list[int], n_tokens: int, burn_in: int) -> int:
    """B from the model's widest layer and the text's length.

    At batch 1 every token reads each layer's recurrent weights whole, so a wide layer is bound
    by memory bandwidth and more streams share each read: measured for one 2,000-unit layer on
    one thread, batch 1, 8, 32 and 64 gave 232, 358, 623 and 745 tokens/s; for 650 units,
    batch 1, 16, 32 and 64 gave 5.4k, 16.1k, 17.5k and 17.3k. Each segment stays at least
    SEGMENT_BURN_INS burn-ins long, so a short text gets fewer streams, down to one.
    """
    wanted = STREAMS_WIDE if max(widths) >= WIDE_LAYER else STREAMS_NARROW
    return max(1, min(wanted, n_tokens // (SEGMENT_BURN_INS * burn_in)))


@dataclass
class Segment:
    """The part of the text one stream records, and where that stream starts."""

    start: int  # first position recorded
    stop: int  # one past the last
    burn_in: int  # positions run before `start` and discarded
    initial: list[LayerState] | None = None  # a fallback's state at start - 1, each (1, H)

    @property
    def first(self) -> int:
        return self.start - self.burn_in


def boundary_difference(probe: list[LayerState], final: list[LayerState]) -> float:
    """Largest |difference| over every unit of every layer's h and c."""
    largest = 0.0
    for a, b in zip(probe, final):
        largest = max(largest, float((a.h - b.h).abs().max()))
        if a.c is not None and b.c is not None:
            largest = max(largest, float((a.c - b.c).abs().max()))
    return largest


class StreamRunner:
    """Runs segments as one batch of streams and writes what they record into the arrays."""

    def __init__(self, recurrence: Recurrence, ids: torch.Tensor,
                 states: dict[tuple[int, str], np.ndarray], chunk_size: int, bar: Progress,
                 decode: Callable[[torch.Tensor, torch.Tensor], None]) -> None:
        self.recurrence, self.ids, self.states = recurrence, ids, states  # states: each (T, H)
        self.chunk_size, self.bar = chunk_size, bar
        self.counting = True  # a first run advances the progress bar, a run again does not
        self.decode_rows = decode  # the top layer's h (R, H) at the text's positions (R,)

    def run(self, segments: list[Segment], again: bool = False
            ) -> tuple[list[list[LayerState]], list[list[LayerState]]]:
        """Each segment's state at its last burn-in position (its probe) and at its last
        position (its final state), each a list over layers of (1, H) states. A segment run
        `again` overwrites its positions and leaves the progress bar where it is."""
        count = len(segments)
        device = self.ids.device
        first = torch.tensor([segment.first for segment in segments], device=device)  # (B,)
        lengths = [segment.stop - segment.first for segment in segments]
        state = self.recurrence.zero_state(count)
        for index, segment in enumerate(segments):
            for layer, initial in zip(state, segment.initial or []):
                layer.h[index] = initial.h[0]
                if layer.c is not None and initial.c is not None:
                    layer.c[index] = initial.c[0]
        probes = [segment.initial for segment in segments]  # a fallback's probe is its start
        finals: list[list[LayerState] | None] = [None] * count
        steps = -(-self.chunk_size // count)
        self.counting = not again
        last = len(self.ids) - 1
        for offset in range(0, max(lengths), steps):
            span = min(steps, max(lengths) - offset)
            local = torch.arange(offset, offset + span, device=device)  # (S,)
            positions = (first.unsqueeze(0) + local.unsqueeze(1)).clamp(max=last)  # (S, B)
            out = self.recurrence.run(self.ids[positions], state)  # per layer (S, B, H)
            for index, segment in enumerate(segments):
                self.keep(out, index, offset, span, segment, lengths[index], probes, finals)
            self.decode(out[-1][0], segments, offset, span)
        return probes, finals  # type: ignore[return-value]

    def keep(self, out: list[tuple[torch.Tensor, torch.Tensor | None]], index: int, offset: int,
             span: int, segment: Segment, length: int, probes: list, finals: list) -> None:
        """Stream `index`'s recorded positions into the arrays, and its probe and final state
        when they fall in this pass."""
        def at(step: int) -> list[LayerState]:
            return [LayerState(h[step - offset, index : index + 1].clone(),
                               None if c is None else c[step - offset, index : index + 1].clone())
                    for h, c in out]

        if segment.burn_in and offset <= segment.burn_in - 1 < offset + span:
            probes[index] = at(segment.burn_in - 1)
        if offset <= length - 1 < offset + span:
            finals[index] = at(length - 1)
        begin, end = max(offset, segment.burn_in), min(offset + span, length)
        if end <= begin:
            return
        rows = slice(segment.first + begin, segment.first + end)
        for layer, (h, c) in enumerate(out, start=1):
            self.states[(layer, "h")][rows] = h[begin - offset : end - offset, index].cpu().numpy()
            if c is not None:
                self.states[(layer, "c")][rows] = (
                    c[begin - offset : end - offset, index].cpu().numpy())
        if self.counting:
            self.bar.advance(end - begin)

    def decode(self, top: torch.Tensor, segments: list[Segment], offset: int, span: int) -> None:
        """The decoder over the top layer's h (S, B, H) at every recorded position of the pass."""
        blocks, positions = [], []
        for index, segment in enumerate(segments):
            begin = max(offset, segment.burn_in)
            end = min(offset + span, segment.stop - segment.first)
            if end > begin:
                blocks.append(top[begin - offset : end - offset, index])
                positions.append(torch.arange(segment.first + begin, segment.first + end,
                                              device=top.device))
        if blocks:
            self.decode_rows(torch.cat(blocks), torch.cat(positions))


def run_streams(runner: StreamRunner, n_tokens: int, streams: int, burn_in: int) -> StreamRecord:
    """The whole text as `streams` contiguous segments in one batch, each verified at its start.

    Stream b + 1 starts `burn_in` tokens before its segment, from a zero state, and those
    states are discarded. At its last burn-in position it must agree with stream b, which
    recorded that position, within BOUNDARY_TOLERANCE in every unit of every layer's h and c:
    then it carries on from the state one stream would have had there, and every later state is
    that stream's up to the rounding the check allows, since the recurrence forgets its start.
    A boundary that fails has its burn-in doubled and its segment run again (all such
    segments together); past MAX_BURN_IN, or once the burn-in reaches the text's start, the
    segment runs as one stream on from stream b's last state, which is exact by construction.
    Each stream's last state is checked against the next stream's probe again whenever either
    changes.
    """
    bounds = [round(b * n_tokens / streams) for b in range(streams + 1)]
    segments = [Segment(bounds[b], bounds[b + 1], min(burn_in, bounds[b]) if b else 0)
                for b in range(streams)]
    probes: list[list[LayerState]] = [[] for _ in segments]
    finals: list[list[LayerState]] = [[] for _ in segments]

    def execute(indices: list[int], again: bool = True) -> None:
        found = runner.run([segments[index] for index in indices], again)
        for index, probe, final in zip(indices, *found):
            probes[index], finals[index] = probe, final

    execute(list(range(streams)), again=False)
    doubled, fallbacks = set(), set()
    largest = max(segment.burn_in for segment in segments)
    while True:
        differences = [boundary_difference(probes[b], finals[b - 1]) for b in range(1, streams)]
        failing = [b for b, difference in enumerate(differences, start=1)
                   if difference > BOUNDARY_TOLERANCE]
        if not failing:
            break
        longer = [b for b in failing if segments[b].initial is None
                  and segments[b].burn_in < bounds[b] and 2 * segments[b].burn_in <= MAX_BURN_IN]
        if longer:
            for b in longer:
                segments[b].burn_in = min(2 * segments[b].burn_in, bounds[b])
                largest = max(largest, segments[b].burn_in)
            doubled.update(longer)
            execute(longer)
            continue
        b = failing[0]
        segments[b] = Segment(bounds[b], bounds[b + 1], 0, finals[b - 1])
        fallbacks.add(b)
        execute([b])
    return StreamRecord(
        streams=streams, burn_in=burn_in if streams > 1 else 0,
        largest_burn_in=largest,
        boundary_difference=max(differences, default=0.0),
        doubled=len(doubled), fallbacks=len(fallbacks))
