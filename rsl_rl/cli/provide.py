"""``rsl-rl provide-rsl-rl-lib``: record, in this environment, that ``rsl-rl-lib`` is provided by this library.

Frameworks check ``importlib.metadata.version("rsl-rl-lib")`` before training (Isaac Lab's train scripts compare it
with the version they need), and their packages depend on ``rsl-rl-lib``: without that distribution installed, pip
installs the real rsl-rl-lib, whose ``rsl_rl`` package then overwrites ours. We do not publish under that name (it is
not ours). Instead this command writes a metadata-only distribution into the interpreter's site-packages:
``rsl_rl_lib-<version>+forge.dist-info`` with ``METADATA``, ``INSTALLER`` and a ``RECORD`` that lists only those files.

* ``importlib.metadata.version("rsl-rl-lib")`` returns ``<version>+forge``, which compares as ``<version>``;
* pip counts the requirement ``rsl-rl-lib==<version>`` as satisfied (a local version label matches a specifier
  without one, PEP 440), so it does not pull the real package;
* ``pip uninstall rsl-rl-lib`` removes exactly those metadata files and nothing of this library.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

RSL_RL_LIB_VERSION = "5.5.1"
"""The rsl-rl-lib release whose public API this library reproduces (tests/fixtures/rsl_rl_lib/api.json)."""
LOCAL_LABEL = "forge"


def provide_rsl_rl_lib(site_dir: str | Path | None = None, version: str = RSL_RL_LIB_VERSION) -> Path:
    """Write the metadata-only ``rsl-rl-lib`` distribution into ``site_dir`` (default: this interpreter's
    site-packages); returns its ``.dist-info`` folder. A previous one written by this command is replaced; one of the
    real rsl-rl-lib is an error (uninstall it first: both install a package named ``rsl_rl``)."""
    site = Path(site_dir) if site_dir is not None else Path(sysconfig.get_paths()["purelib"])
    if not site.is_dir():
        raise FileNotFoundError(f"site-packages folder not found: {site}")
    full_version = f"{version}+{LOCAL_LABEL}"
    for existing in site.glob("rsl_rl_lib-*.dist-info"):
        if not existing.name.endswith(f"+{LOCAL_LABEL}.dist-info"):
            raise ValueError(
                f"{existing} belongs to the real rsl-rl-lib, whose rsl_rl package clashes with this library's: "
                "run `pip uninstall rsl-rl-lib`, reinstall this library, then run this command again"
            )
        for file in existing.iterdir():
            file.unlink()
        existing.rmdir()
    dist_info = site / f"rsl_rl_lib-{full_version}.dist-info"
    dist_info.mkdir()
    files = {
        "METADATA": (
            "Metadata-Version: 2.1\n"
            "Name: rsl-rl-lib\n"
            f"Version: {full_version}\n"
            "Summary: Provided by rsl-rl-forge (import name rsl_rl), which reproduces rsl-rl-lib's public API; "
            "this distribution holds metadata only.\n"
        ),
        "INSTALLER": "rsl-rl-forge\n",
    }
    record = []
    for name, text in files.items():
        data = text.encode()
        (dist_info / name).write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{dist_info.name}/{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")
    return dist_info


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="rsl-rl provide-rsl-rl-lib", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--version", default=RSL_RL_LIB_VERSION, help="rsl-rl-lib version to record")
    parser.add_argument("--site-dir", default=None, help="site-packages folder (default: this interpreter's)")
    args = parser.parse_args(list(argv))
    dist_info = provide_rsl_rl_lib(args.site_dir, args.version)
    print(f"wrote {dist_info}: importlib.metadata.version('rsl-rl-lib') now reports {args.version}+{LOCAL_LABEL}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
