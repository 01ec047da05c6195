"""Each instance's own Python environment (instances/<id>/venv): made from the image's interpreter,
seeing the image's packages through one .pth file, tagged with the image build it was made for,
and rebuilt (the old one moved aside, never deleted) when a different image starts it.
docs/venv.md says why it is built this way."""
