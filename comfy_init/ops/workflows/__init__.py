"""Shared workflows: `content` (what a ComfyUI workflow file is, and the model files it names),
`library` (shared/workflows and its index of who published what, when), `commands` (publish, list
and import, each returning a Result)."""
