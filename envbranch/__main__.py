import sys

from envbranch.cli import main

sys.exit(main())
