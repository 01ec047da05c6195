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
import tarfile

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


def open_reader(path):
    """A stream-mode tarfile reading `path`, whichever compression it has; the caller closes both."""
    raw = open(path, "rb")  # noqa: SIM115 (closed by the caller through `close_reader`)
    try:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(_ZSTD_MAGIC):
            import zstandard

            stream = zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK, closefd=False)
        elif magic.startswith(_GZIP_MAGIC):
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        else:
            stream = raw  # an uncompressed tar, or not an archive at all: tarfile says which
        # "r:" rather than the stream mode "r|", whose buffer copies itself at every 512-byte header:
        # members are read in order, so tarfile's seeks are all forward (or to where it already is),
        # which zstandard's and gzip's readers do by reading on.
        tar = tarfile.open(fileobj=stream, mode="r:", encoding="utf-8", errors="surrogateescape")
    except BaseException:
        raw.close()
        raise
    return raw, tar


def read_errors():
    """The exception types that mean a damaged or truncated archive."""
    import zlib

    import zstandard

    return (tarfile.TarError, EOFError, zstandard.ZstdError, zlib.error, gzip.BadGzipFile, UnicodeError, ValueError)


def hasher():
    import blake3

    return blake3.blake3()
