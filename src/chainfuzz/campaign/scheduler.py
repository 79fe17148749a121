"""Which pair runs next, and for how long: time goes where new behaviour still comes.

Modelled on HypoFuzz's estimator (``hypofuzz/bayes.py``: behaviours per input is one over
the inputs since the last new behaviour; times inputs per second, behaviours per second):

- every pair first gets a floor, `FLOOR_SHARE` of the budget split evenly, handed out in
  slices round-robin, least-served first, so every pair starts early and a slow one (an
  engine) costs its own floor, not the others';
- then each free worker takes the pair with the highest estimated new behaviours per second
  (`estimate`), sampled in proportion to it with the campaign's seed, so a pair that has
  gone quiet still gets an occasional slice; a new defect key counts as `NEW_KEY_GAIN`
  behaviours (the runner's weight);
- ``schedule = "equal"`` gives every pair the same time instead, for comparison (`bench/`).

Both search modes are pairs alike: a Hypothesis pair's behaviours are new outcomes on new input
shapes (`internal.runner`), an atheris pair's are libFuzzer's new coverage features. An
atheris slice pays the harness' start-up (2-5 s measured), so its slices are longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FLOOR_SHARE = 0.5
# Slice lengths in seconds, (shortest, longest): a Hypothesis slice costs ~20 ms to resume
# (`runner.MIN_SLICE`), an atheris slice 2-5 s of start-up, so atheris slices are long enough
# for that to stay small. At a 2 s shortest slice, the floor pass of `bench/bench_campaign.py`
# (60 pairs, 0.75 s each in a 90 s campaign) took 120 s: pairs were still unstarted at the end.
SLICE = {"hypothesis": (0.5, 30.0), "atheris": (10.0, 120.0)}
FLOOR_SLICE = {"hypothesis": 5.0, "atheris": 20.0}


@dataclass
class PairStats:
    """What the scheduler knows of a pair; kept in the campaign's state between resumes."""

    seconds: float = 0.0
    slices: int = 0
    examples: int = 0
    gain: int = 0
    since_new: float = 0.0  # inputs since the last new behaviour (estimated per slice)
    coverage: int | None = None
    state: str = "ok"  # ok, done (nothing left to search), hung, failed
    message: str | None = None
    internal: bool = False  # failed by chainfuzz's own error (a property raised): exit code 3

    def add(self, seconds: float, examples: int, gain: int) -> None:
        self.seconds += seconds
        self.slices += 1
        self.examples += examples
        self.gain += gain
        # A slice with gain g over n inputs found one new behaviour every n/g inputs.
        self.since_new = examples / gain if gain > 0 else self.since_new + examples

    @property
    def live(self) -> bool:
        return self.state == "ok"


def estimate(p: PairStats) -> float:
    """New behaviours per second the pair's next slice is expected to find (HypoFuzz's
    behaviours-per-input times inputs per second); an unrun pair is the most promising."""
    if p.seconds <= 0 or p.examples <= 0:
        return 1.0
    return (p.examples / p.seconds) / max(1.0, p.since_new)


@dataclass
class Scheduler:
    pairs: dict[str, PairStats]
    modes: dict[str, str]  # pair id -> "hypothesis" or "atheris"
    budget: float
    seed: int | None = None
    equal: bool = False
    # pair id -> its place among its target's pairs: the floor pass starts every target's
    # first pair before any target's second, so a short campaign touches every target.
    ranks: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"campaign:{self.seed}")

    def next(self, left: float, running: set[str], *, allow_busy: bool = False) -> tuple[str, float] | None:
        """The pair to run next and its slice in seconds, or None when nothing can run now.
        ``left``: seconds of the budget left; ``running``: pairs busy on other workers, run
        again only with ``allow_busy`` when no other pair can run."""
        free = [i for i, p in self.pairs.items() if p.live and i not in running]
        if not free and allow_busy:  # more workers than pairs: a busy pair runs twice
            free = [i for i, p in self.pairs.items() if p.live]
        if not free or left <= 0:
            return None
        live = sum(p.live for p in self.pairs.values())
        floor = (1.0 if self.equal else FLOOR_SHARE) * self.budget / max(1, live)
        behind = [i for i in free if self.pairs[i].seconds < floor]
        if behind:
            # Least served first; among unstarted pairs the Hypothesis ones first (they start
            # in milliseconds, an atheris harness in seconds), each target's first pair before
            # any target's second. Ordered by id alone, one target's pairs all came before the
            # next's: in `bench/bench_campaign.py` the median first detection was 26.5 s, 10.8 s
            # interleaved.
            pair = min(behind, key=lambda i: (self.pairs[i].seconds > 0, self.modes[i] == "atheris",
                                              self.pairs[i].seconds, self.ranks.get(i, 0), i))
            mode = self.modes[pair]
            want = min(FLOOR_SLICE[mode], floor - self.pairs[pair].seconds)
            return pair, self._clamp(mode, want, left)
        if self.equal:
            return None  # each pair had its share
        weights = [estimate(self.pairs[i]) for i in free]
        pair = self.rng.choices(free, weights=weights)[0]
        return pair, self._clamp(self.modes[pair], left / (2 * live), left)

    @staticmethod
    def _clamp(mode: str, want: float, left: float) -> float:
        low, high = SLICE[mode]
        return max(min(low, left), min(high, want, left))
