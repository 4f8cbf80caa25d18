"""keras.utils.get_file: a file from a URL, cached under ~/.keras/<cache_subdir> (or
$KERAS_HOME), checked against a hash, and optionally extracted, with Keras's paths."""

import os

from densitron.utils.io_utils import print_msg

# (hashlib, tarfile, tempfile, urllib and zipfile are imported where used: `import densitron`
# stays quick)


def _hash_file(path, algorithm):
    import hashlib

    h = hashlib.sha256() if algorithm == "sha256" else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _algorithm(hash_algorithm, file_hash):
    if hash_algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    if hash_algorithm not in ("sha256", "md5"):
        raise ValueError("`hash_algorithm` must be 'auto', 'sha256' or 'md5'. "
                         f"Received: hash_algorithm={hash_algorithm!r}")
    return hash_algorithm


def _inside(root, name):
    target = os.path.realpath(os.path.join(root, name))
    return target == os.path.realpath(root) or target.startswith(
        os.path.realpath(root) + os.sep)


def _extract(path, dest, archive_format):
    """Extracts a zip or tar archive into dest, refusing members that would land outside it;
    False when the file is not an archive of the allowed formats."""
    import tarfile
    import zipfile

    formats = {"auto": ("tar", "zip"), "tar": ("tar",), "zip": ("zip",)}.get(archive_format)
    if formats is None:
        raise ValueError("`archive_format` must be 'auto', 'tar' or 'zip'. "
                         f"Received: archive_format={archive_format!r}")
    if "tar" in formats and tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            members = archive.getmembers()
            for m in members:
                if not _inside(dest, m.name) or m.issym() or m.islnk():
                    raise ValueError(f"The archive {path!r} holds a member outside its folder "
                                     f"or a link. Received: member {m.name!r}")
            archive.extractall(dest, members=members)
        return True
    if "zip" in formats and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not _inside(dest, name):
                    raise ValueError(f"The archive {path!r} holds a member outside its folder. "
                                     f"Received: member {name!r}")
            archive.extractall(dest)
        return True
    return False


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Keras's get_file: downloads `origin` unless the cached copy exists (and matches
    `file_hash`), into a temporary file moved into place when complete, so an interrupted
    download leaves nothing behind. Returns the file's path, or with `extract` the folder
    the archive was extracted into."""
    import tempfile
    import urllib.parse
    import urllib.request

    if origin is None:
        raise ValueError(f'Please specify the "origin" argument (URL of the file to download). '
                         f"Received: origin={origin!r}")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    provided = fname is not None
    fname = os.fspath(fname) if fname is not None else os.path.basename(
        urllib.parse.urlsplit(origin).path)
    if not fname:
        raise ValueError("Can't parse the file name from the origin provided; please specify "
                         f"the `fname` argument. Received: origin={origin!r}")
    if os.sep in fname:
        raise ValueError("`fname` names a file, not a path: give its folder as `cache_dir`. "
                         f"Received: fname={fname!r}")
    cache_dir = os.path.expanduser(cache_dir or os.environ.get("KERAS_HOME")
                                   or os.path.join("~", ".keras"))
    datadir = os.path.join(cache_dir, cache_subdir)
    try:
        os.makedirs(datadir, exist_ok=True)
    except OSError:
        datadir = os.path.join(tempfile.gettempdir(), ".keras", cache_subdir)
        os.makedirs(datadir, exist_ok=True)
    extraction_dir = None
    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[:fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)
    algorithm = _algorithm(hash_algorithm, file_hash) if file_hash else None
    download = force_download or not os.path.exists(target)
    if not download and file_hash and _hash_file(target, algorithm) != file_hash:
        print_msg(f"A local file was found, but it seems to be incomplete or outdated because the "
                  f"{algorithm} file hash does not match the original value of {file_hash} so we "
                  "will re-download the data.")
        download = True
    if download:
        print_msg(f"Downloading data from {origin}")
        fd, part = tempfile.mkstemp(dir=datadir, prefix=f".{os.path.basename(target)}.")
        os.close(fd)
        try:
            urllib.request.urlretrieve(origin, part)
            if file_hash and _hash_file(part, algorithm) != file_hash:
                raise ValueError(f"Incomplete or corrupted file detected. The {algorithm} file "
                                 f"hash does not match the provided value of {file_hash}. "
                                 f"Received: a file from {origin}")
            os.replace(part, target)
        except BaseException:
            if os.path.exists(part):
                os.remove(part)
            raise
    if extraction_dir is not None:
        if not _extract(target, extraction_dir, "tar" if untar else archive_format):
            raise ValueError(f"Could not extract {target!r}: not a tar or zip archive. "
                             f"Received: archive_format={archive_format!r}")
        return extraction_dir
    return target
