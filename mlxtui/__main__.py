import sys

from mlxtui.cli import main

sys.exit(main())
