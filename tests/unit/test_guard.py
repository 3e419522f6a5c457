from lbctl import guard, inventory


def desired(members: dict[str, list[str]], states: dict[str, str] | None = None):
    states = states or {}
    return inventory.from_raw({"pools": {pool: {"members": [
        {"name": n, "address": "10.0.0.1", "port": 8000 + i, "state": states.get(n, "enabled")}
        for i, n in enumerate(names)]} for pool, names in members.items()}})


def test_first_apply_and_growth_pass():
    assert guard.refusals(None, desired({"web": []}), {"web"}, 2, 0.5) == []
    assert guard.refusals(desired({"web": ["a"]}), desired({"web": ["a", "b"]}), {"web"}, 3, 0.5) == []


def test_removing_half_passes_more_is_refused():
    before = desired({"web": ["a", "b", "c", "d"]})
    assert guard.refusals(before, desired({"web": ["a", "b"]}), {"web"}, 0, 0.5) == []
    assert guard.refusals(before, desired({"web": ["a"]}), {"web"}, 0, 0.5) == [
        "pool web: 3 of 4 serving members would stop serving, more than max_removal 50%"]


def test_members_going_to_maintenance_count_as_removed():
    before = desired({"web": ["a", "b", "c"]})
    after = desired({"web": ["a", "b", "c"]}, {"b": "maint", "c": "maint"})
    assert guard.refusals(before, after, {"web"}, 0, 0.5) != []


def test_min_members_and_unwatched_pools():
    before = desired({"web": ["a", "b", "c"], "static": ["x", "y"]})
    after = desired({"web": ["a", "b"], "static": []})
    assert guard.refusals(before, after, {"web"}, 3, 0.9) == [
        "pool web: 2 serving members would be fewer than min_members 3 (now 3)"]
    assert guard.refusals(before, desired({"static": ["x", "y"]}), {"web"}, 0, 0.5) == [
        "pool web: would disappear with 3 serving members"]
