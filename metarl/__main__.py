import sys

from metarl.cli import main

sys.exit(main())
