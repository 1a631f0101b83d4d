"""``python -m deflicker``: the same as the ``deflicker`` console script."""
from deflicker.cli.main import main

main()
