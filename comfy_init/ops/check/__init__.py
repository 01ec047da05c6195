"""`comfy-init check`: every conflict a shared tree can have, as Problems, and the safe fixes.

- `context`: what the checkers share (the registry, instances/, the options), read once;
- `run`: the table of checkers (`CHECKERS`), the fix pass and the Result;
- `registry`: entries without directories and directories without entries, ports and GPUs
  configured twice; registers an orphaned directory;
- `tree`: each instance's tree as the planner judges it, missing links (made by the fix), shared
  and misplaced ComfyUI databases;
- `writable`: folders the uid that runs an instance cannot write;
- `temps`: what killed comfy-init writers left behind (removed, or moved to meta/trash, when
  provably stale).
"""
