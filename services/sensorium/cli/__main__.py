"""`python -m sensorium.cli ...`: the `sensorium` command (tests and benchmarks run it so)."""

import sys

from sensorium.cli import main

sys.exit(main())
