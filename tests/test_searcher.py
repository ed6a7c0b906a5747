"""The de-duplicating searcher, driven by hand (suggest / on_trial_complete) with a scripted inner searcher."""

from ray.tune.search import Searcher

from nasq.search.searcher import DedupSearcher


class Scripted(Searcher):
    """Suggests a fixed sequence of candidates; records what it is told."""

    def __init__(self, suggestions):
        super().__init__(metric=["accuracy"], mode=["max"])
        self.suggestions = list(suggestions)
        self.told = []

    def suggest(self, trial_id):
        return self.suggestions.pop(0) if self.suggestions else Searcher.FINISHED

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told.append((trial_id, result, error))


def test_repeats_are_never_returned_and_are_answered_from_known_results(space, tmp_path):
    a, b = space.sample(0), space.sample(1)
    inner = Scripted([a, a, b, b, a, b])
    s = DedupSearcher(inner, space, objectives=["accuracy"])
    assert s.suggest("t1") == a
    # `a` is running: its repeat is failed at once, the next suggestion is `b`
    assert s.suggest("t2") == b
    assert inner.told == [("t2", None, True)]
    s.on_trial_complete("t1", {"status": "ok", "accuracy": 0.9, "key": "x"})
    s.on_trial_complete("t2", {"status": "failed", "accuracy": float("nan")})
    assert inner.told[-2] == ("t1", {"accuracy": 0.9}, False)
    assert inner.told[-1][2] is True  # failed candidates are errors for the sampler, never NaN values
    # remaining suggestions are all repeats: answered from the cache, then the space is exhausted
    assert s.suggest("t3") == Searcher.FINISHED
    assert ("t3-repeat1", {"accuracy": 0.9}, False) in inner.told
    assert s.repeats_skipped == 4


def test_state_saves_and_restores(space, tmp_path):
    a = space.sample(0)
    s = DedupSearcher(Scripted([a]), space, objectives=["accuracy"])
    assert s.suggest("t1") == a
    s.on_trial_complete("t1", {"status": "ok", "accuracy": 0.5})
    s.save(str(tmp_path / "state.pkl"))
    fresh = DedupSearcher(Scripted([]), space, objectives=["accuracy"])
    fresh.restore(str(tmp_path / "state.pkl"))
    assert fresh.finished == s.finished
    fresh.inner.suggestions = [a]
    assert fresh.suggest("t2") == Searcher.FINISHED  # `a` already finished: not evaluated again
