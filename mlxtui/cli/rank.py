"""`python -m mlxtui.cli.rank`: one rank of a run that the dashboard launched through mlx.launch.

It is `mlxtui train --config FILE`, where FILE holds the dashboard's settings. They arrive in
the environment (`CONFIG_ENV`, set with mlx.launch's --env) rather than as a file, because
mlx.launch passes environment values to every host, over SSH too, and a file written on the
launching machine is not on the others. Everything else is the CLI's rank side as it is
(cli/launch.py): heartbeats, the stop line on the input, only rank 0 writes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def main() -> int:
    from mlxtui.core.distributed import CONFIG_ENV

    text = os.environ.get(CONFIG_ENV)
    if not text:
        print(
            f"mlxtui.cli.rank: {CONFIG_ENV} is not set: this module is a rank of a run the "
            "dashboard launches; use `mlxtui train --nproc N` by hand",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="mlxtui-rank-") as folder:
        path = Path(folder) / "dashboard-settings.yaml"
        path.write_text(text, encoding="utf-8")  # JSON is YAML
        from mlxtui.cli.main import main as cli_main

        return cli_main(["train", "--config", str(path)])


if __name__ == "__main__":
    sys.exit(main())
