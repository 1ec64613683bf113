"""`python -m revplan`: the same as the `revplan` command."""

import sys

from revplan.cli import main

sys.exit(main())
