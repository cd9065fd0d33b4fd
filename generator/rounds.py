"""How many samples a night's next round generates, and when the rounds stop (``pipeline.step_rounds``).

After the first round, further rounds generate and curate until
``generate.target_kept`` descriptions are kept. :func:`plan_round` decides each
next round from what the night has done so far, in this order:

1. ``--samples N`` typed on the command line with no target given by the user
   (config file, environment or flag; a profile's target does not count): N
   samples in all, one round.
2. ``generate.target_kept`` 0: one round. Target reached: stop.
3. A budget spent: ``generate.max_samples`` samples or ``generate.max_minutes``.
4. Target unreachable: once the night has a few hundred samples
   (:data:`PROBE_SAMPLES`), an optimistic kept rate -- ``kept + 2*sqrt(kept) + 3``
   of the samples, about a 95 % upper bound (the "rule of three" when nothing was
   kept) -- gives the samples the shortfall still needs; when even those overshoot
   what is left of the sample budget (or, at the night's seconds per sample, of
   the time budget), the night stops rather than spend its budget on a model that
   cannot make it. Before that, a night with nothing kept generates up to the probe.
5. Otherwise the next round is the shortfall at the night's own kept rate plus 20 %,
   within the budget and at most the night's samples so far (or the probe): rounds
   at most double, so the rate is judged again before a large round.
"""

from __future__ import annotations

import dataclasses
import math

PROBE_SAMPLES = 256  # samples a night has before its kept rate is trusted to declare a target unreachable
MARGIN = 1.2  # a round asks for the shortfall at the night's rate plus this margin


@dataclasses.dataclass
class NightSoFar:
    """What the night's rounds have done, and what bounds them."""

    target: int
    samples: int
    kept: int
    max_samples: int
    batch_size: int = 1
    seconds: float = 0.0  # generation and curation so far, for the time projection
    minutes: float = 0.0  # minutes the further rounds have taken
    max_minutes: float = 0.0
    bounded: str = ""  # set when the user's --samples is the night's whole size: the flag as typed


def optimistic_rate(kept: int, samples: int) -> float:
    """The most the kept rate plausibly is after ``kept`` of ``samples`` (about a 95 % upper bound)."""
    return min(1.0, (kept + 2 * math.sqrt(kept) + 3) / max(samples, 1))


def plan_round(night: NightSoFar) -> tuple[int, str | None]:
    """(samples of the next round, None) or (0, why the night stops)."""
    target, total, kept = night.target, night.samples, night.kept
    if night.bounded:
        return 0, (f"{total} samples as asked ({night.bounded}, no generate.target_kept given): "
                   f"{kept} kept, no further rounds")
    if target <= 0:
        return 0, "one round (generate.target_kept is 0)"
    if kept >= target:
        return 0, f"target reached: {kept} kept of {target} wanted"
    left = night.max_samples - total
    if left <= 0:
        return 0, f"sample budget spent: {total} of generate.max_samples {night.max_samples}, {kept} kept"
    if night.max_minutes and night.minutes >= night.max_minutes:
        return 0, (f"time budget spent: {night.minutes:.1f} of generate.max_minutes {night.max_minutes}, "
                   f"{kept} kept")
    best = optimistic_rate(kept, total)
    needed = math.ceil((target - kept) / best)
    if total >= PROBE_SAMPLES:
        unreachable = _unreachable(night, best, needed)
        if unreachable:
            return 0, unreachable
    elif kept == 0:
        return min(left, max(night.batch_size, PROBE_SAMPLES - total)), None
    rate = kept / total if kept else best
    wanted = max(night.batch_size, math.ceil((target - kept) / rate * MARGIN))
    return min(wanted, left, max(total, PROBE_SAMPLES)), None


def _unreachable(night: NightSoFar, best: float, needed: int) -> str | None:
    """Why the target cannot be reached within the budget, or None."""
    shortfall = night.target - night.kept
    so_far = (f"nothing kept of {night.samples} samples" if night.kept == 0
              else f"{night.kept} kept of {night.samples} samples ({night.kept / night.samples:.1%})")
    even = f"even at {best:.1%} kept, the {shortfall} still wanted need about {needed} more samples"
    hint = " (an undertrained or regressed model? more train.steps, or a lower generate.target_kept)"
    left = night.max_samples - night.samples
    if needed > left:
        return (f"target unreachable: {so_far}; {even}, over the {left} left of generate.max_samples "
                f"{night.max_samples}{hint}")
    if night.max_minutes and night.seconds:
        minutes = needed * night.seconds / night.samples / 60
        if night.minutes + minutes > night.max_minutes:
            return (f"target unreachable in time: {so_far}; {even}, about {minutes:.0f} minutes, over the "
                    f"{night.max_minutes - night.minutes:.1f} left of generate.max_minutes {night.max_minutes}{hint}")
    return None


def samples_bound(config) -> str:
    """The ``--samples`` flag when it alone sizes the night (no target given by the user), else ""."""
    samples_origin = config.origins.get("generate.samples", "")
    target_origin = config.origins.get("generate.target_kept", "default")
    if samples_origin.startswith("flag ") and (target_origin == "default" or target_origin.startswith("profile ")):
        return f"{samples_origin.removeprefix('flag ')} {config.generate.samples}"
    return ""
