"""Scenario tests for the pure scheduler: each names the rule it proves."""

from __future__ import annotations

from collections.abc import Set
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from app.scheduling import (
    Decision,
    Eviction,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    RunningDeployment,
    RunningSet,
    UnknownStrategy,
    get_strategy,
    list_strategies,
    relevance_filter,
    schedule,
    schedule_incremental,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
PRIORITY = get_strategy("priority")
NONE = get_strategy("none")


def uid(n: int) -> UUID:
    return UUID(int=n)


def res(cpu: float = 0, ram: float = 0, gpu: int = 0) -> Resources:
    return Resources(round(cpu * 1000), round(ram * 1000), gpu)


def running(n: int, priority: int, resources: Resources, *, started: int = 0) -> RunningDeployment:
    at = T0 + timedelta(minutes=started)
    return RunningDeployment(uid(n), priority, resources, at, at, may_preempt=True)


def pending(
    n: int, priority: int, resources: Resources, *, created: int = 0, preempt: bool = True
) -> PendingDeployment:
    return PendingDeployment(uid(n), priority, resources, T0 + timedelta(minutes=created), preempt)


def victims(decision: Decision, preemptor: int) -> list[UUID]:
    return [e.victim_id for e in decision.evicted if e.preemptor_id == uid(preemptor)]


def test_deployment_that_fits_starts() -> None:
    d = schedule(res(4), [running(1, 0, res(1))], [pending(2, 0, res(3))], PRIORITY, NOW)
    assert d == Decision(started=[uid(2)])


def test_one_lower_priority_victim_makes_room() -> None:
    d = schedule(res(4), [running(1, 1, res(4))], [pending(2, 5, res(2))], PRIORITY, NOW)
    assert d.evicted == [Eviction(uid(1), uid(2))]
    assert d.started == [uid(2)]


def test_several_victims_are_taken_lowest_priority_first() -> None:
    run = [running(1, 3, res(2)), running(2, 1, res(2)), running(3, 2, res(2))]
    d = schedule(res(6), run, [pending(9, 10, res(4))], PRIORITY, NOW)
    # Reprieve from the top: p3 is spared, p2 and p1 must go, recorded lowest first.
    assert victims(d, 9) == [uid(2), uid(3)]
    assert d.started == [uid(9)]


def test_reprieve_keeps_each_candidate_that_still_leaves_room() -> None:
    # kube-scheduler's rule: free 0, need 5; A(p1, 2) B(p2, 2) C(p3, 3) -> victims {A, C}.
    run = [running(1, 1, res(2)), running(2, 2, res(2)), running(3, 3, res(3))]
    d = schedule(res(7), run, [pending(10, 10, res(5))], PRIORITY, NOW)
    assert set(victims(d, 10)) == {uid(1), uid(3)}
    assert d.started == [uid(10)]


def test_equal_priority_reprieves_the_earliest_started_first() -> None:
    run = [running(1, 1, res(2), started=5), running(2, 1, res(2), started=1)]
    d = schedule(res(4), run, [pending(9, 2, res(2))], PRIORITY, NOW)
    assert victims(d, 9) == [uid(1)]


def test_only_equal_or_higher_priority_running_means_no_eviction() -> None:
    run = [running(1, 5, res(2)), running(2, 7, res(2))]
    d = schedule(res(4), run, [pending(9, 5, res(1))], PRIORITY, NOW)
    assert d == Decision()


def test_evicting_every_candidate_must_suffice_or_nobody_is_evicted() -> None:
    run = [running(1, 1, res(1)), running(2, 9, res(3))]
    d = schedule(res(4), run, [pending(9, 5, res(2))], PRIORITY, NOW)
    assert d == Decision()


def test_policy_never_does_not_evict_but_can_be_evicted() -> None:
    run = [running(1, 1, res(4))]
    polite = pending(2, 5, res(2), preempt=False)
    assert schedule(res(4), run, [polite], PRIORITY, NOW) == Decision()
    run_polite = [RunningDeployment(uid(2), 5, res(4), T0, T0, may_preempt=False)]
    d = schedule(res(4), run_polite, [pending(3, 9, res(4))], PRIORITY, NOW)
    assert d.evicted == [Eviction(uid(2), uid(3))]


def test_none_strategy_never_evicts() -> None:
    d = schedule(res(4), [running(1, 0, res(4))], [pending(2, 100, res(1))], NONE, NOW)
    assert d == Decision()


def test_victim_is_requeued_and_resumes_in_the_same_pass_when_room_allows() -> None:
    # N (p10) spares H (p5, higher) and evicts V (p2). M (p7) then evicts H, whose 3 cores leave
    # 2 free after M: H cannot come back, but V, next in line, fits and runs again.
    run = [running(1, 5, res(3)), running(2, 2, res(1))]
    queue = [pending(10, 10, res(1), created=0), pending(11, 7, res(1), created=1)]
    d = schedule(res(4), run, queue, PRIORITY, NOW)
    assert d.evicted == [Eviction(uid(2), uid(10)), Eviction(uid(1), uid(11))]
    assert d.started == [uid(10), uid(11), uid(2)]


def test_victim_may_preempt_lower_ones_after_being_evicted() -> None:
    # N (p10) evicts H (p5); M (p7) evicts Y (p6), leaving 1 core; requeued H takes it plus the
    # core of V (p2), which it evicts: victims keep their own right to preempt.
    run = [running(1, 6, res(3)), running(2, 5, res(2)), running(3, 2, res(1))]
    queue = [pending(10, 10, res(2), created=0), pending(11, 7, res(2), created=1)]
    d = schedule(res(6), run, queue, PRIORITY, NOW)
    assert d.evicted == [
        Eviction(uid(2), uid(10)),
        Eviction(uid(1), uid(11)),
        Eviction(uid(3), uid(2)),
    ]
    assert d.started == [uid(10), uid(11), uid(2)]


def test_only_the_missing_room_is_freed() -> None:
    # 1 core free, 2 needed: the p1 candidate is reprieved, the p0 one goes; nothing else moves.
    run = [running(1, 1, res(1)), running(2, 0, res(1))]
    d = schedule(res(3), run, [pending(9, 5, res(2))], PRIORITY, NOW)
    assert d == Decision(started=[uid(9)], evicted=[Eviction(uid(2), uid(9))])


def test_victim_does_not_fit_back_beside_its_preemptor() -> None:
    # The victim's RAM is what the newcomer lacked; 0.5 core and 8 GiB left cannot hold it again.
    run = [running(1, 1, res(1, ram=8))]
    d = schedule(res(1.5, ram=12), run, [pending(9, 5, res(1, ram=4))], PRIORITY, NOW)
    assert d == Decision(started=[uid(9)], evicted=[Eviction(uid(1), uid(9))])


def test_backfill_small_jobs_pass_a_big_one_that_does_not_fit() -> None:
    # The big p5 job cannot fit and has nobody below it to evict; it does not block the p1 one.
    queue = [pending(1, 5, res(3), created=0), pending(2, 1, res(1), created=1)]
    d = schedule(res(4), [running(3, 9, res(2))], queue, PRIORITY, NOW)
    assert d == Decision(started=[uid(2)])


def test_priority_then_fifo_then_id_order() -> None:
    queue = [
        pending(4, 1, res(1), created=0),
        pending(3, 2, res(1), created=5),
        pending(2, 2, res(1), created=1),
        pending(1, 2, res(1), created=1),
    ]
    d = schedule(res(10), [], queue, PRIORITY, NOW)
    assert d.started == [uid(1), uid(2), uid(3), uid(4)]


def test_ram_bound_cluster() -> None:
    run = [running(1, 0, res(0.1, ram=30))]
    d = schedule(res(64, ram=32), run, [pending(2, 0, res(0.1, ram=4))], PRIORITY, NOW)
    assert d == Decision()
    d = schedule(res(64, ram=32), run, [pending(2, 1, res(0.1, ram=4))], PRIORITY, NOW)
    assert d.evicted == [Eviction(uid(1), uid(2))]


def test_gpu_bound_cluster() -> None:
    run = [running(1, 0, res(1, gpu=3)), running(2, 0, res(1, gpu=1))]
    d = schedule(res(16, gpu=4), run, [pending(3, 1, res(1, gpu=2))], PRIORITY, NOW)
    # Same priority and start time: id 1 is considered for reprieve first. Two GPUs needed: only
    # evicting id 1 (3 GPUs) gives them. One GPU needed: id 1 is spared and id 2 goes.
    assert victims(d, 3) == [uid(1)]
    d = schedule(res(16, gpu=4), run, [pending(3, 1, res(1, gpu=1))], PRIORITY, NOW)
    assert victims(d, 3) == [uid(2)]


def test_larger_than_the_cluster_fails_with_exceeds_capacity() -> None:
    queue = [pending(1, 0, res(1, gpu=1)), pending(2, 0, res(1))]
    d = schedule(res(8, ram=8), [], queue, PRIORITY, NOW)
    assert d.failed == [uid(1)] and d.started == [uid(2)]


def test_eviction_frees_slack_for_an_earlier_skipped_deployment() -> None:
    # X (p5, 1 GPU, policy never) is skipped: no GPU free. Y (p4) evicts Z (p1, 2 cpu + 1 GPU) for
    # its cpu; the freed GPU now lets X start, in the same pass, although X was passed by.
    run = [running(1, 1, res(2, gpu=1))]
    queue = [pending(10, 5, res(0, ram=1, gpu=1), preempt=False), pending(11, 4, res(2))]
    d = schedule(res(2, ram=4, gpu=1), run, queue, PRIORITY, NOW)
    assert d.evicted == [Eviction(uid(1), uid(11))]
    assert d.started == [uid(11), uid(10)]


def test_running_over_capacity_is_rejected() -> None:
    with pytest.raises(ValueError, match="exceed the cluster's capacity"):
        schedule(res(1), [running(1, 0, res(2))], [], PRIORITY, NOW)


def test_registry_lists_and_rejects() -> None:
    assert [name for name, _ in list_strategies()] == ["priority", "none"]
    assert all(description for _, description in list_strategies())
    with pytest.raises(UnknownStrategy):
        get_strategy("fifo")
    with pytest.raises(KeyError):
        get_strategy("fifo")


def test_running_set_lower_total_is_strictly_below() -> None:
    rs = RunningSet([running(1, 1, res(1)), running(2, 2, res(2)), running(3, 2, res(4))])
    assert rs.lower_total(2) == res(1)
    assert rs.lower_total(3) == res(7)
    assert rs.lower_total(1) == Resources.zero()
    rs.add(running(4, 0, res(8)))
    assert rs.lower_total(1) == res(8)
    rs.remove(uid(2))
    assert rs.lower_total(3) == res(13)
    assert [r.id for r in rs.lower_in_reprieve_order(3)] == [uid(3), uid(1), uid(4)]


def test_incremental_creation_fetches_nothing_unless_it_evicts() -> None:
    calls: list[int] = []

    def fetch(flt: RelevanceFilter, seen: Set[UUID]) -> list[PendingDeployment]:
        calls.append(1)
        return []

    d = schedule_incremental(
        res(4), [], [pending(1, 0, res(1))], fetch, PRIORITY, NOW, at_fixpoint=True
    )
    assert d.started == [uid(1)] and calls == []
    d = schedule_incremental(
        res(4), [running(2, 0, res(4))], [pending(1, 1, res(1))], fetch, PRIORITY, NOW,
        at_fixpoint=True,
    )  # fmt: skip
    assert d.evicted == [Eviction(uid(2), uid(1))] and calls == [1]


def test_room_appearing_fetches_only_what_could_act() -> None:
    backlog = [pending(i, 0, res(1), created=i) for i in range(1, 500)]
    fetched: list[int] = []

    def fetch(flt: RelevanceFilter, seen: Set[UUID]) -> list[PendingDeployment]:
        page = [p for p in backlog if p.id not in seen and flt.matches(p)][: flt.limit]
        fetched.append(len(page))
        return page

    d = schedule_incremental(res(2), [running(999, 0, res(1))], [], fetch, PRIORITY, NOW)
    assert d.started == [uid(1)]
    # One page of 100, then a second look with no room left: 2 fetches, not 499 rows.
    assert fetched == [100, 0]


def test_relevance_filter_bands_follow_running_priorities() -> None:
    run = [running(1, 1, res(2)), running(2, 3, res(1))]
    flt = relevance_filter(res(4), run)
    assert flt.fits == res(1)
    assert [(b.priority_min, b.priority_max, b.max_resources) for b in flt.bands] == [
        (2, 3, res(3)),
        (4, None, res(4)),
    ]
    assert not flt.matches(pending(9, 1, res(2)))
    assert flt.matches(pending(9, 2, res(3)))
    assert not flt.matches(pending(9, 2, res(3), preempt=False))
    assert flt.matches(pending(9, 0, res(5)))  # oversized: fetched to be failed
    merged = relevance_filter(res(4), run, max_bands=1)
    assert [(b.priority_min, b.priority_max) for b in merged.bands] == [(2, None)]
    assert relevance_filter(res(4), run, preemption=False).bands == ()


def test_incremental_pass_pages_through_what_fits_behind_the_preemptor() -> None:
    # A (p3) evicts Z for its GPU, leaving one core: X2 (p4, ahead of A) now fits. With one-row
    # pages and one merged band, the first page after the eviction is X1 (p5), admitted by the band
    # but unable to act; the pass must page on to X2 rather than leave it waiting beside free room.
    capacity = res(4, ram=10, gpu=1)
    run = [
        RunningDeployment(uid(1), 6, res(0, ram=5), T0, T0, may_preempt=True),
        running(2, 1, res(2, gpu=1)),
        running(3, 0, res(2)),
    ]
    backlog = [pending(11, 5, res(0, ram=6)), pending(12, 4, res(1), preempt=False)]
    newcomer = pending(10, 3, res(1, gpu=1), created=5)
    full = schedule(capacity, run, [*backlog, newcomer], PRIORITY, NOW)
    assert full == Decision(started=[uid(10), uid(12)], evicted=[Eviction(uid(2), uid(10))])

    def fetch(flt: RelevanceFilter, seen: Set[UUID]) -> list[PendingDeployment]:
        return [p for p in backlog if p.id not in seen and flt.matches(p)][: flt.limit]

    d = schedule_incremental(
        capacity, run, [newcomer], fetch, PRIORITY, NOW, at_fixpoint=True, page_size=1, max_bands=1
    )
    assert d == full


def test_freed_slack_goes_to_the_highest_ranked_skipped_deployment() -> None:
    # X1 and X2 (p6, policy never) wait for cores; A (p5) evicts Z for its GPU, freeing 3 cores,
    # room for one of them: the earlier-created X1 must get it.
    capacity = res(4, ram=10, gpu=1)
    run = [running(1, 0, res(3, gpu=1)), running(2, 8, res(1))]
    queue = [
        pending(11, 6, res(2), created=0, preempt=False),
        pending(12, 6, res(2), created=1, preempt=False),
        pending(10, 5, res(0, ram=1, gpu=1), created=2),
    ]
    d = schedule(capacity, run, queue, PRIORITY, NOW)
    assert d == Decision(started=[uid(10), uid(11)], evicted=[Eviction(uid(1), uid(10))])
