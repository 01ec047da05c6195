"""Instance snapshots: the parts behind `comfy-init snapshot ...` (comfy_init.ops.snapshots).

- `archive`: the archive format (a tar stream in zstandard; gzip read too) and its streams.
- `collect`: what a snapshot holds (the walk of custom_nodes/, user/, output/) and what its
  manifest says beside the files (versions, registry configuration, git checkouts, pip freeze).
- `create`: writing one, under the instance's snapshot lock, to a temporary name renamed at the end.
- `scan`: reading one once, member by member, refusing unsafe members and checking every hash
  against the manifest: `verify` and `restore` both read through it.
- `restore`: extracting into a sibling directory and swapping it in by one atomic rename.
- `catalog`: finding, listing, pruning and deleting snapshots.

zstandard and blake3 are imported here only, never on `comfy-init run`'s path.
"""
