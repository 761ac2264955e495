"""`python -m pruneofa …` runs the command-line tool, for environments where the console script is not installed."""

import sys

from pruneofa.cli import main

sys.exit(main())
