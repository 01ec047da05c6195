"""The model hash cache: entries count only while the stat matches, concurrent writers both keep
what they learnt, a damaged cache is rebuilt and its bytes kept."""

import json
import multiprocessing
import os

from comfy_init.layout import Layout
from comfy_init.store.hashcache import HashCache


def layout_at(tmp_path):
    layout = Layout(str(tmp_path))
    os.makedirs(layout.meta, exist_ok=True)
    return layout


def test_an_entry_counts_while_size_mtime_and_inode_match(tmp_path):
    layout = layout_at(tmp_path)
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    info = os.lstat(path)
    cache = HashCache.load(layout)
    cache.record("f", info, "h1")
    cache.record("f", info, damage="")  # the header verdict joins the hash
    assert cache.save() is True
    again = HashCache.load(layout)
    assert again.lookup("f", info) == ("h1", "")
    path.write_bytes(b"abd")  # same size, new mtime
    assert again.lookup("f", os.lstat(path)) is None
    assert again.save() is False  # nothing learnt: no write


def test_two_writers_merge_and_forgotten_entries_go(tmp_path):
    layout = layout_at(tmp_path)
    (tmp_path / "f").write_bytes(b"x")
    info = os.lstat(tmp_path / "f")
    seed = HashCache.load(layout)
    seed.record("gone", info, "old")
    seed.save()
    first, second = HashCache.load(layout), HashCache.load(layout)
    first.record("a", info, "ha")
    second.record("b", info, "hb")
    second.forget("gone")
    first.save()
    second.save()
    dirs = json.loads((tmp_path / "meta" / "model-hashes.json").read_text())["dirs"]
    assert dirs == {"": {"a": dirs[""]["a"], "b": dirs[""]["b"]}}


def _writer(data, number):
    layout = Layout(data)
    info = os.lstat(os.path.join(data, "f"))
    for round_ in range(5):
        cache = HashCache.load(layout)
        for n in range(20):
            cache.record(f"w{number}/r{round_}/{n}", info, f"{number}-{round_}-{n}".ljust(64, "0"))
        cache.save()


def test_concurrent_verifier_processes_lose_no_entry(tmp_path):
    layout_at(tmp_path)
    (tmp_path / "f").write_bytes(b"x")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    dirs = json.loads((tmp_path / "meta" / "model-hashes.json").read_text())["dirs"]
    assert len(dirs) == 4 * 5 and sum(map(len, dirs.values())) == 4 * 5 * 20


def test_a_damaged_cache_is_rebuilt_and_its_bytes_kept(tmp_path):
    layout = layout_at(tmp_path)
    cache_path = tmp_path / "meta" / "model-hashes.json"
    for damage in (b"{not json", json.dumps({"comfy_init_model_hashes": 99, "dirs": {}}).encode(),
                   json.dumps({"comfy_init_model_hashes": 1, "dirs": {"d": {"k": [1, 2]}}}).encode(),
                   json.dumps({"comfy_init_model_hashes": 1, "dirs": {"d": "not a table"}}).encode()):
        cache_path.write_bytes(damage)
        cache = HashCache.load(layout)
        (tmp_path / "f").write_bytes(b"x")
        info = os.lstat(tmp_path / "f")
        assert cache.lookup("d/k", info) is None
        cache.record("f", info, "h")
        cache.save()
        document = json.loads(cache_path.read_text())
        assert document["comfy_init_model_hashes"] == 1 and list(document["dirs"]) == [""]
        assert list(document["dirs"][""]) == ["f"]
        if damage.startswith(b"{not") or b"99" in damage or b"not a table" in damage:
            assert (tmp_path / "meta" / "model-hashes.json.damaged").read_bytes() == damage


def test_a_link_planted_as_the_cache_is_never_followed(tmp_path):
    layout = layout_at(tmp_path)
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    os.symlink(target, tmp_path / "meta" / "model-hashes.json")
    cache = HashCache.load(layout)
    assert cache.damaged and cache.count() == 0
    (tmp_path / "f").write_bytes(b"x")
    cache.record("f", os.lstat(tmp_path / "f"), "h")
    cache.save()
    assert target.read_text() == "keep me"
    assert not os.path.islink(tmp_path / "meta" / "model-hashes.json")
