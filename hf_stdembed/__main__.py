"""``python -m hf_stdembed``: the same as the ``hf-stdembed`` command."""

from .cli import main

main()
