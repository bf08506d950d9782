import threading

import pytest

from refstore import ConflictError, InvalidBucketNameError, InvalidInputError
from refstore.mapping import BucketMap, MappingHolder, MappingVersion


def version(generation, created="2026-01-01T00:00:00Z", uid="uid-1"):
    return MappingVersion("BucketMapping/default/main", uid, created, generation)


def test_disabled_mapping_is_identity():
    snapshot = BucketMap(False, {"user": "phys-user"})
    assert snapshot.physical("user") == "user"
    assert snapshot.logical("phys-user") == "phys-user"


def test_enabled_mapping_translates_both_ways_and_passes_unknown_names():
    snapshot = BucketMap(True, {"user": "phys-user"})
    assert snapshot.physical("user") == "phys-user"
    assert snapshot.physical("phys-user") == "phys-user"
    assert snapshot.logical("phys-user") == "user"
    assert snapshot.physical("other") == "other"


def test_snapshots_are_immutable():
    snapshot = BucketMap(True, {"user": "phys-user"})
    with pytest.raises(TypeError):
        snapshot.forward["user"] = "x"  # type: ignore[index]


def test_unversioned_update_replaces_and_bumps_generation():
    holder = MappingHolder(BucketMap(True, {"user": "phys-user"}))
    changed, snapshot = holder.update(bucket_map={"logs": "phys-logs"})
    assert changed and snapshot.generation == 1
    assert dict(holder.current.forward) == {"logs": "phys-logs"}


def test_versions_older_conflict_equal_is_a_no_op_newer_applies():
    holder = MappingHolder()
    assert holder.update(True, {"a-1": "p-1"}, version(2))[0]
    changed, snapshot = holder.update(True, {"a-1": "p-1"}, version(2))
    assert not changed and snapshot.generation == 1
    with pytest.raises(ConflictError) as info:
        holder.update(True, {"a-1": "p-old"}, version(1))
    assert info.value.context["current"]["version"]["generation"] == 2
    with pytest.raises(ConflictError):
        holder.update(True, {"a-1": "p-other"}, version(2))
    assert holder.update(True, {"a-1": "p-3"}, version(3))[0]
    assert holder.update(
        True, {"a-1": "p-new"}, version(1, created="2026-02-01T00:00:00Z", uid="uid-2")
    )[0]
    assert holder.current.physical("a-1") == "p-new"


def test_invalid_updates_are_refused_and_change_nothing():
    holder = MappingHolder(BucketMap(True, {"user": "phys-user"}))
    with pytest.raises(InvalidBucketNameError):
        holder.update(bucket_map={"user": "Bad_Bucket"})
    with pytest.raises(InvalidInputError):
        holder.update(True, {})
    assert dict(holder.current.forward) == {"user": "phys-user"} and holder.current.generation == 0


def test_concurrent_readers_never_see_a_half_applied_map():
    """Each map sends every logical name to buckets of one generation only."""
    names = [f"logical-{i}" for i in range(50)]
    holder = MappingHolder(BucketMap(True, {n: f"gen-0-{i}" for i, n in enumerate(names)}))
    stop = threading.Event()
    torn = []

    def reader():
        while not stop.is_set():
            snapshot = holder.current
            generations = {snapshot.physical(n).split("-")[1] for n in names}
            if len(generations) != 1:
                torn.append(generations)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for generation in range(1, 300):
        holder.update(bucket_map={n: f"gen-{generation}-{i}" for i, n in enumerate(names)})
    stop.set()
    for thread in threads:
        thread.join()
    assert torn == []
    assert holder.current.generation == 299
