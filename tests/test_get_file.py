"""utils.get_file with file:// URLs (no network needed): caching, hashes, atomic downloads,
archive extraction, Keras's paths."""

import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from densitron.utils import get_file


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src" / "data.csv"
    path.parent.mkdir()
    path.write_bytes(b"a,b\n1,2\n")
    return path


def url(path):
    return path.as_uri()


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def test_download_cache_and_hash(tmp_path, source):
    cache = tmp_path / "cache"
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    got = get_file(origin=url(source), cache_dir=cache, file_hash=sha)
    assert got == os.path.join(cache, "datasets", "data.csv")
    assert read(got) == source.read_bytes()
    source.write_bytes(b"changed")
    assert read(get_file(origin=url(source), cache_dir=cache)) == b"a,b\n1,2\n"
    assert read(get_file(origin=url(source), cache_dir=cache, force_download=True)) == \
        b"changed"
    # a cached file whose hash no longer matches is fetched again
    md5 = hashlib.md5(b"changed").hexdigest()
    named = get_file("renamed.csv", url(source), cache_dir=cache, cache_subdir="sub",
                     md5_hash=md5)
    assert named == os.path.join(cache, "sub", "renamed.csv")
    assert sorted(os.listdir(os.path.join(cache, "datasets"))) == ["data.csv"]  # no leftovers


def test_a_bad_hash_leaves_nothing(tmp_path, source):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="hash does not match.*Received"):
        get_file(origin=url(source), cache_dir=cache, file_hash="0" * 64)
    assert os.listdir(os.path.join(cache, "datasets")) == []


def test_extraction(tmp_path, source):
    zpath = tmp_path / "src" / "pack.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("pack/a.txt", "A")
    tpath = tmp_path / "src" / "pack2.tar.gz"
    with tarfile.open(tpath, "w:gz") as t:
        data = b"B"
        info = tarfile.TarInfo("pack2/b.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    cache = tmp_path / "cache"
    out = get_file(origin=url(zpath), cache_dir=cache, extract=True)
    assert out == os.path.join(cache, "datasets", "pack.zip")
    assert read(os.path.join(out, "pack", "a.txt"), "r") == "A"
    out = get_file("pack2.tar.gz", url(tpath), cache_dir=cache, extract=True)
    assert out == os.path.join(cache, "datasets", "pack2_extracted")
    assert read(os.path.join(out, "pack2", "b.txt"), "r") == "B"
    with pytest.raises(ValueError, match="not a tar or zip.*Received"):
        get_file("plain", url(source), cache_dir=cache, extract=True)


def test_unsafe_archives_and_bad_arguments(tmp_path, source):
    evil = tmp_path / "src" / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside its folder.*Received"):
        get_file(origin=url(evil), cache_dir=tmp_path / "cache", extract=True)
    assert not (tmp_path / "cache" / "outside.txt").exists()
    with pytest.raises(ValueError, match="origin.*Received"):
        get_file("x.csv")
    with pytest.raises(ValueError, match="fname.*Received"):
        get_file(os.path.join("a", "b.csv"), url(source), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="hash_algorithm.*Received"):
        get_file(origin=url(source), cache_dir=tmp_path, file_hash="ab", hash_algorithm="crc")


def test_keras_home(tmp_path, source, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    assert get_file(origin=url(source)) == os.path.join(tmp_path, "home", "datasets",
                                                        "data.csv")
