"""The campaign's scheduler, simulated: a floor for every pair, then time to the pairs still
finding new behaviour; a slow pair costs its own floor; hung and failed pairs are left."""

from __future__ import annotations

from chainfuzz.campaign.scheduler import FLOOR_SHARE, PairStats, Scheduler, estimate


def simulate(scheduler: Scheduler, budget: float, behaviour) -> list[str]:
    """Run the scheduler on a simulated clock; ``behaviour(pair, seconds, stats)`` gives
    (seconds taken, inputs, gain) of a slice. The pairs chosen, in order."""
    spent, chosen = 0.0, []
    while spent < budget:
        choice = scheduler.next(budget - spent, set())
        if choice is None:
            break
        pair, seconds = choice
        took, inputs, gain = behaviour(pair, seconds, scheduler.pairs[pair])
        scheduler.pairs[pair].add(took, inputs, gain)
        spent += took
        chosen.append(pair)
    return chosen


def gains_only(winner: str):
    """Every pair checks 1,000 inputs a second; only ``winner`` keeps finding new behaviour
    (one per 50 inputs), the others found a little at first and then nothing."""
    def behaviour(pair, seconds, stats):
        inputs = int(seconds * 1000)
        if pair == winner:
            return seconds, inputs, inputs // 50
        return seconds, inputs, 5 if stats.slices == 0 else 0
    return behaviour


def test_every_pair_starts_within_the_first_round_hypothesis_first():
    pairs = {i: PairStats() for i in ("b::harness:template", "a::template.renders", "c::template.x")}
    modes = {"b::harness:template": "atheris", "a::template.renders": "hypothesis", "c::template.x": "hypothesis"}
    s = Scheduler(pairs, modes, budget=600, seed=1)
    chosen = simulate(s, 600, gains_only("a::template.renders"))
    assert set(chosen[:3]) == set(pairs)
    assert modes[chosen[2]] == "atheris"  # the cheap starts first
    for stats in pairs.values():  # every pair got its floor
        assert stats.seconds >= FLOOR_SHARE * 600 / 3 - 1


def test_the_floor_starts_every_target_before_any_targets_second_pair():
    """Pairs of targets a..c, three each: the first three slices go to three targets, not to
    target a's three pairs (the id order)."""
    pairs = {f"{t}::{p}": PairStats() for t in "abc" for p in ("p1", "p2", "p3")}
    ranks = {i: int(i[-1]) - 1 for i in pairs}
    s = Scheduler(pairs, dict.fromkeys(pairs, "hypothesis"), budget=300, seed=1, ranks=ranks)
    chosen = simulate(s, 300, gains_only("none"))
    assert {c.split("::")[0] for c in chosen[:3]} == set("abc")
    twin = Scheduler({i: PairStats() for i in pairs}, dict.fromkeys(pairs, "hypothesis"), budget=300, seed=1)
    assert {c.split("::")[0] for c in simulate(twin, 300, gains_only("none"))[:3]} == {"a"}


def test_time_goes_to_the_pair_still_finding_new_behaviour():
    pairs = {i: PairStats() for i in "abcd"}
    s = Scheduler(pairs, dict.fromkeys(pairs, "hypothesis"), budget=400, seed=2)
    simulate(s, 400, gains_only("c"))
    others = max(pairs[i].seconds for i in "abd")
    assert pairs["c"].seconds > 3 * others, {i: round(p.seconds) for i, p in pairs.items()}


def test_equal_schedule_is_the_twin_that_does_not():
    pairs = {i: PairStats() for i in "abcd"}
    s = Scheduler(pairs, dict.fromkeys(pairs, "hypothesis"), budget=400, seed=2, equal=True)
    simulate(s, 400, gains_only("c"))
    times = [p.seconds for p in pairs.values()]
    assert max(times) - min(times) <= 5.0, times


def test_a_slow_pair_does_not_starve_the_rest():
    """An engine pair whose slices overrun fourfold (it answers late) still leaves every other
    pair its floor."""
    pairs = {i: PairStats() for i in ("engine", "t1", "t2", "t3")}
    s = Scheduler(pairs, dict.fromkeys(pairs, "hypothesis"), budget=300, seed=3)

    def behaviour(pair, seconds, stats):
        took = seconds * 4 if pair == "engine" else seconds
        return took, int(took * (5 if pair == "engine" else 1000)), 1
    simulate(s, 300, behaviour)
    for name in ("t1", "t2", "t3"):
        assert pairs[name].seconds >= FLOOR_SHARE * 300 / 4 - 1, {i: p.seconds for i, p in pairs.items()}


def test_hung_failed_and_done_pairs_are_never_chosen():
    pairs = {"ok": PairStats(), "hung": PairStats(state="hung"), "failed": PairStats(state="failed"),
             "done": PairStats(state="done")}
    s = Scheduler(pairs, dict.fromkeys(pairs, "hypothesis"), budget=100, seed=4)
    assert set(simulate(s, 100, gains_only("ok"))) == {"ok"}


def test_busy_pairs_run_twice_only_when_asked():
    pairs = {"only": PairStats()}
    s = Scheduler(pairs, {"only": "hypothesis"}, budget=100, seed=5)
    assert s.next(100, {"only"}) is None
    assert s.next(100, {"only"}, allow_busy=True)[0] == "only"


def test_estimate_follows_hypofuzz():
    fresh, quiet, finding = PairStats(), PairStats(), PairStats()
    quiet.add(10, 10_000, 0)
    finding.add(10, 10_000, 100)
    assert estimate(fresh) == 1.0
    assert estimate(finding) == 1000 / 100  # inputs per second over inputs per new behaviour
    assert estimate(quiet) < estimate(finding)
