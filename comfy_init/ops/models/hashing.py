"""BLAKE3 of model files (the hash ComfyUI's asset database uses), through the cache in meta/.

A file is read in 1 MiB pieces and hashed as it is read: a piece that fits the CPU's cache is
hashed from there (4 MiB pieces, or one reused buffer, measured slower). blake3 hashes each piece on
several threads for files of 64 MiB and more when the machine has 4 CPUs or more (on 2, the
threads only add their cost). The file is opened with
O_NOFOLLOW and checked to be the same inode the walk saw, so a link swapped in meanwhile is
never followed and a replaced file is not recorded under the old one's stat.
"""

import os
import stat

CHUNK = 1 << 20
THREADED_FROM = 64 << 20
_THREADS = (os.cpu_count() or 1) >= 4


class Changed(Exception):
    """The file is not what the walk saw any more (replaced, grown, gone): its hash is not kept."""


def _blake3():
    import blake3  # only when a file is hashed: never on `comfy-init run`'s path

    return blake3


def hash_file(path, info=None, progress=None):
    """The BLAKE3 hex digest of the regular file `path`. With `info` (its lstat), Changed is raised
    when the file read is not that one, or changed while it was read. `progress(n)` gets each
    piece's length. OSError when it cannot be read."""
    blake3 = _blake3()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (info is not None and before.st_ino != info.st_ino):
            raise Changed(path)
        threaded = _THREADS and before.st_size >= THREADED_FROM
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO) if threaded else blake3.blake3()
        read, update = os.read, hasher.update
        while chunk := read(fd, CHUNK):
            update(chunk)
            if progress is not None:
                progress(len(chunk))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if info is not None and (after.st_size != info.st_size or after.st_mtime_ns != info.st_mtime_ns
                             or after.st_ctime_ns != info.st_ctime_ns):  # a write that set its mtime back
        raise Changed(path)
    return hasher.hexdigest()


def cached_hash(cache, model_file, progress=None):
    """The hash of a ModelFile: from `cache` while its stat matches, else computed and recorded.
    None when the file changed while it was read (it is then reported as growing, not hashed)."""
    known = cache.lookup(model_file.key, model_file.info)
    if known is not None and known[0] is not None and len(known[0]) == 64:
        return known[0]
    try:
        digest = hash_file(model_file.path, model_file.info, progress)
    except Changed:
        return None
    cache.record(model_file.key, model_file.info, digest)
    return digest
