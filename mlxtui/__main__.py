import sys

from mlxtui.cli.main import main

sys.exit(main())
