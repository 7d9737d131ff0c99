"""`python -m flowforge`: the same command line as the `flowforge` script."""
from .cli import main

if __name__ == "__main__":  # not on import (pytest's doctest collection imports every module)
    raise SystemExit(main())
