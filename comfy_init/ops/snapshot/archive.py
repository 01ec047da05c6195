"""The snapshot archive: a POSIX (pax) tar stream compressed with zstandard.

Members are the instance's own folders by their path relative to the instance directory
(`custom_nodes/...`, `user/...`, `output/...`), directories before what they hold, and last the
manifest, `MANIFEST_MEMBER`: it carries the hashes computed while the files were written, so it can
only come at the end. A reader therefore checks everything in one pass and trusts a member only
once the manifest at the end agrees with it.

Compression is zstandard, multi-threaded, with its frame checksum, so a flipped byte is found
even in a member the manifest does not describe. Archives made by hand as .tar.gz are read too
(the magic bytes decide, not the name).
"""

import gzip
import queue
import tarfile
import threading

MANIFEST_MEMBER = "manifest.json"
FORMAT = "comfy-init-snapshot"
FORMAT_VERSION = 1
TOP_FOLDERS = ("custom_nodes", "user", "output")
CHUNK = 1 << 20
ZSTD_LEVEL = 3  # the zstd command line's default: what users compare against

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


class ArchiveWriter:
    """`with ArchiveWriter(file) as tar:` a tarfile writing through a zstandard stream into `file`."""

    def __init__(self, file, level=ZSTD_LEVEL):
        import zstandard

        self._compressor = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
        self._file = file
        self._stream = None
        self.tar = None

    def __enter__(self):
        self._stream = self._compressor.stream_writer(self._file, closefd=False)
        # "w:" rather than the stream mode "w|": tarfile then writes headers and data straight to the
        # compressor, without the stream mode's own buffer (a copy of every byte). It only asks the
        # compressor for tell() once, at 0.
        self.tar = tarfile.open(fileobj=self._stream, mode="w:", format=tarfile.PAX_FORMAT,
                                encoding="utf-8", errors="surrogateescape")
        self.tar.copybufsize = CHUNK
        return self.tar

    def __exit__(self, kind, _value, _traceback):
        if kind is None:
            self.tar.close()
            self._stream.close()  # writes the end of the zstandard frame
        return False


class _ReadAhead:
    """A forward-only reader that decompresses on a thread of its own, a few chunks ahead, while
    the caller parses and hashes (zstandard and zlib release the GIL): what `zstd -d | tar` gets
    from being two processes. `tell` and forward `seek` are all tarfile's "r:" mode asks for."""

    def __init__(self, stream, depth=4):
        self._stream = stream
        self._queue = queue.Queue(maxsize=depth)
        self._buffer, self._offset, self._position, self._ended = b"", 0, 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshot-read-ahead", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(4 * CHUNK)
                self._queue.put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 (raised again in the reader's thread)
            self._queue.put(exc)

    def _fill(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        if not item:
            self._ended = True
        self._buffer, self._offset = item, 0

    def read(self, size=-1):
        parts = []
        while size != 0 and not (self._ended and self._offset >= len(self._buffer)):
            if self._offset >= len(self._buffer):
                self._fill()
                continue
            take = len(self._buffer) - self._offset if size < 0 else min(size, len(self._buffer) - self._offset)
            parts.append(self._buffer[self._offset:self._offset + take])
            self._offset += take
            self._position += take
            size -= take if size > 0 else 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_view(self, size):
        """Up to `size` bytes as a view into the decompressed chunk, without copying them: for
        member data, which is only hashed and written. Fewer bytes only at a chunk's end."""
        if self._offset >= len(self._buffer):
            if self._ended:
                return memoryview(b"")
            self._fill()
        take = min(size, len(self._buffer) - self._offset)
        view = memoryview(self._buffer)[self._offset:self._offset + take]
        self._offset += take
        self._position += take
        return view

    def tell(self):
        return self._position

    def seek(self, offset, whence=0):
        target = offset + (self._position if whence == 1 else 0)
        if whence not in (0, 1) or target < self._position:
            raise ValueError("a snapshot archive is read forward only")
        while self._position < target and self.read(min(target - self._position, 4 * CHUNK)):
            pass
        return self._position

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.01)


class Reader:
    """`tar`: a tarfile reading `path` in order, whichever compression it has. Close it."""

    def __init__(self, path):
        self._raw = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._ahead = None
        try:
            magic = self._raw.read(4)
            self._raw.seek(0)
            if magic.startswith(_ZSTD_MAGIC):
                import zstandard

                self._ahead = _ReadAhead(zstandard.ZstdDecompressor().stream_reader(self._raw, read_size=4 * CHUNK,
                                                                                    closefd=False))
            elif magic.startswith(_GZIP_MAGIC):
                self._ahead = _ReadAhead(gzip.GzipFile(fileobj=self._raw, mode="rb"))
            # else an uncompressed tar, or not an archive at all: tarfile says which.
            # "r:" rather than the stream mode "r|", whose buffer copies itself at every 512-byte
            # header: members are read in order, so tarfile's seeks are all forward or in place.
            self.tar = tarfile.open(fileobj=self._ahead or self._raw, mode="r:", encoding="utf-8",
                                    errors="surrogateescape")
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._ahead is not None:
            self._ahead.close()
        self._raw.close()


def read_errors():
    """The exception types that mean a damaged or truncated archive."""
    import zlib

    import zstandard

    return (tarfile.TarError, EOFError, zstandard.ZstdError, zlib.error, gzip.BadGzipFile, UnicodeError, ValueError)


def hasher():
    import blake3

    return blake3.blake3()
