"""Shared models: where every instance finds its model folders (`resolve`, `extra_paths`), the walk
of model files (`walk`), their BLAKE3 hashes through the cache in meta/ (`hashing`), what is wrong
with a file (`checks`: empty, left-over downloads, damaged safetensors, still growing), duplicates
of shared files inside instance folders and their fix (`duplicates`), and `models verify` (`verify`).
blake3 is imported in `hashing` only, when a hash is needed."""
