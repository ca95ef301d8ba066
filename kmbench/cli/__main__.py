import sys

from kmbench.cli import main

sys.exit(main())
